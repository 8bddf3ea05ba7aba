"""An event hook for the real-server tests, named by ``DCR_EVENT_HOOK=dcr_it_hooks:record``.

Each event is appended as one JSON line to the file ``DCR_IT_EVENTS`` names (one ``write`` of a
short line per event, so the lines of several workers do not interleave).
"""

from __future__ import annotations

import json
import os
from typing import Any


def record(event: Any) -> None:
    """Append ``event``'s fields as a JSON line."""
    line = json.dumps(event.fields()) + "\n"
    with open(os.environ["DCR_IT_EVENTS"], "a", encoding="utf-8") as sink:
        sink.write(line)


def explode(event: Any) -> None:
    """A hook that always fails: the request must be answered anyway."""
    raise RuntimeError("hook failure that must not reach the client")
