"""Text that is safe to show an operator: client-supplied strings with their control characters
escaped, for the CLI's human-readable output and for event fields read by text log formatters.

A registered ``client_name`` or ``software_id`` is any Unicode text the client chose. Printed raw
to a terminal, ESC starts escape sequences (set the window title, erase lines, move the cursor,
write fake rows), BEL rings, CR and LF start new lines, and the bidirectional controls reorder
what follows (a Trojan Source-style ``U+202E`` makes a column read backwards). Every such
character is shown as a Python-style escape (``\\x1b``, ``\\u202e``) instead.
"""

from __future__ import annotations

import re
import unicodedata

# Characters that can only be controls: C0, DEL and C1 (Cc), and the Unicode line and paragraph
# separators. The rest (bidi controls, zero-width characters, BOM, tags: category Cf, and lone
# surrogates: Cs) is found by category among the non-ASCII characters.
_CANDIDATE = re.compile(r"[\x00-\x1f\x7f-\U0010ffff]")
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char >= "\xa0" and unicodedata.category(char) not in _ESCAPED_CATEGORIES:
        return char
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str) -> str:
    """``text`` with every control, format (bidi, zero-width), separator and surrogate character
    escaped; printable text, non-ASCII letters included, is left as it is."""
    if text.isascii() and text.isprintable():
        return text
    return _CANDIDATE.sub(_escape, text)


def printable_lines(text: str) -> str:
    """:func:`printable` for a message of several lines: each ``\n`` is kept, all else escaped."""
    return "\n".join(printable(line) for line in text.split("\n"))
