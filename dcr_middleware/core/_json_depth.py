"""How deeply a JSON text nests, measured before it is parsed.

Every JSON text the middleware receives (a registration or RFC 7592 update body, a software
statement's header and payload) is checked here first. Python's parser, ``json.dumps`` and any
validator that walks a value recurse once per level, so a body nested about a thousand levels
deep used to parse and then fail later, outside any handler, as a ``RecursionError`` (a 500).
Counting brackets on the text is linear, recursion-free, and done before any recursive step.
"""

from __future__ import annotations

import re

#: The deepest nesting of arrays and objects accepted in a JSON text; the top-level object is
#: level 1. A registration's deepest standard member is ``jwks.keys[].x5c[]`` at level 5.
MAX_DEPTH = 32

# A complete JSON string (skipped: brackets inside strings do not nest), or one bracket. The
# string pattern is the unrolled loop, linear on any input. An unterminated string is not
# matched and its brackets count: that only refuses a text the parser would refuse anyway.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


def too_deep(text: str, limit: int = MAX_DEPTH) -> bool:
    """Whether ``text`` opens more than ``limit`` arrays or objects inside one another."""
    # Fast path: fewer opening brackets than the limit cannot nest deeper than it.
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for match in _TOKEN.finditer(text):
        found = match.group()
        if found == "[" or found == "{":
            depth += 1
            if depth > limit:
                return True
        elif found == "]" or found == "}":
            depth = max(depth - 1, 0)  # a stray closer: invalid JSON, the parser refuses it
    return False
