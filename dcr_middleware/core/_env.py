"""The ``DCR_*`` environment variables: each field's name (:func:`env_name`), and parsers for
the values: lists, booleans, numbers and durations.

Each parser takes the raw string and returns the typed value or raises ``ValueError`` with a
message that can be shown to an operator next to the variable's name.
"""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*\Z")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def env_name(field_name: str) -> str:
    """The variable of a field: ``max_body_bytes`` -> ``DCR_MAX_BODY_BYTES``."""
    return "DCR_" + field_name.upper()


def parse_list(raw: str) -> tuple[str, ...]:
    """Split a comma-separated list, dropping blanks and surrounding white space."""
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def parse_bool(raw: str) -> bool:
    """Parse ``true/false``, ``1/0``, ``yes/no``, ``on/off`` (any case)."""
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def parse_int(raw: str) -> int:
    """Parse a base-10 integer."""
    try:
        return int(raw.strip(), 10)
    except ValueError:
        raise ValueError(f"expected an integer, got {raw!r}") from None


def parse_float(raw: str) -> float:
    """Parse a finite decimal number."""
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError(f"expected a number, got {raw!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"expected a finite number, got {raw!r}")
    return value


def parse_duration(raw: str) -> int:
    """Parse a duration in seconds: ``3600``, ``90s``, ``15m``, ``12h``, ``30d`` or ``2w``."""
    match = _DURATION.match(raw.lower())
    if match is None:
        raise ValueError(f"expected seconds or a duration like 30d, 12h, 15m, got {raw!r}")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
