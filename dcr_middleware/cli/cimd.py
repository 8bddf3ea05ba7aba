"""``dcr-middleware cimd ...``: list, show and evict cached Client ID Metadata Documents in Redis.

An entry is what a lookup of a URL client id cached (:mod:`dcr_middleware.core.cimd`): the
document's validated metadata with its fetch time and freshness bounds, or a refusal remembered
for ``DCR_CIMD_NEGATIVE_TTL``. A cached document is served as it was validated, so after a change
of policy (``DCR_ALLOWED_*``, the host lists, ``DCR_CIMD_MAX_BYTES``...) evicting is how the
documents are checked again at once; an evicted URL is fetched again on its next lookup, within
the fetch budgets. Every URL and metadata value is the client's text: shown escaped.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from typing import Any

from ..core._printable import printable
from ..core.cimd import document_key, read_entry
from ..core.errors import ConfigurationError
from ..core.ops import DocumentDelete, DocumentGet, DocumentList
from ..core.settings import Settings
from ..storage.redis import RedisBackend

_KEY = re.compile(r"[0-9a-f]{64}")  # a document_key: the SHA-256 of the URL, in hex
_STATE_WIDTH = 25  # "refused: content_encoding"
_FIELDS = ("url", "key", "state", "reason", "fetched_at", "expires_at", "stale_until", "metadata")


def _backend(settings: Settings) -> RedisBackend:
    if not settings.uses_redis:
        raise ConfigurationError(
            [
                "DCR_REDIS_URL: cached client metadata documents are read from Redis; set it to "
                "the middleware's Redis (the embedded store caches them inside each server "
                "process, for that process only)"
            ]
        )
    return RedisBackend(settings)


def _key(target: str) -> str:
    # A URL always starts with https://, so the two cannot be mistaken for each other.
    return target if _KEY.fullmatch(target) else document_key(target)


def _number(entry: dict[str, Any], name: str) -> float | None:
    value = entry.get(name)
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def described(key: str, raw: str, now: float) -> dict[str, Any]:
    """One cached entry as the commands show it: ``state`` is ``fresh`` (served from the cache),
    ``stale`` (past its ``max-age``: the next lookup fetches it again, and serves this copy if
    that fails, until ``stale_until``), ``refused`` (with ``reason``, until ``expires_at``),
    ``expired`` (about to leave the store) or ``unreadable`` (not an entry of this version)."""
    entry = read_entry(raw)
    if entry is None:
        return {**dict.fromkeys(_FIELDS), "key": key, "state": "unreadable"}
    expires_at, stale_until = _number(entry, "expires_at"), _number(entry, "stale_until")
    metadata = entry.get("metadata")
    refused = entry.get("refused")
    state = "expired"
    if refused is not None:
        state = "refused" if expires_at is not None and now < expires_at else state
    elif expires_at is not None and now < expires_at:
        state = "fresh"
    elif stale_until is not None and now < stale_until:
        state = "stale"
    url = entry.get("url")
    return {
        "url": url if isinstance(url, str) else None,
        "key": key,
        "state": state,
        "reason": None if refused is None else str(refused),
        "fetched_at": _number(entry, "fetched_at"),
        "expires_at": expires_at,
        "stale_until": stale_until,
        "metadata": metadata if isinstance(metadata, dict) else None,
    }


def _shown(value: Any) -> str:
    # Human-readable output only: --json relies on JSON's own escaping.
    if value is None or value == "":
        return "-"
    return printable(value if isinstance(value, str) else json.dumps(value))


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    try:
        return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(epoch))
    except (OverflowError, OSError, ValueError):  # not a time this machine can show
        return "?"


def _state(row: dict[str, Any]) -> str:
    state: str = row["state"]
    return f"refused: {printable(row['reason'])}" if state == "refused" else state


def _read_all(settings: Settings) -> list[dict[str, Any]]:
    backend = _backend(settings)
    try:
        found = backend.run(DocumentList())
    finally:
        backend.close()
    now = time.time()
    rows = [described(key, raw, now) for key, raw in found]
    return sorted(rows, key=lambda r: (r["url"] is None, r["url"] or "", r["key"]))


def list_documents(args: argparse.Namespace, settings: Settings) -> int:
    """List the cached documents and refusals, by URL (escaped)."""
    rows = _read_all(settings)
    if args.json:
        summary = [{k: v for k, v in row.items() if k != "metadata"} for row in rows]
        for shown, row in zip(summary, rows, strict=True):
            shown["client_name"] = (row["metadata"] or {}).get("client_name")
        print(json.dumps(summary))
        return 0
    urls = [_shown(row["url"] or f"(key {row['key']})") for row in rows]
    width = max((len(url) for url in urls), default=3)
    print(f"{'state':{_STATE_WIDTH}}  {'fetched':20}  {'expires':20}  {'url':{width}}  client_name")
    for row, url in zip(rows, urls, strict=True):
        name = (row["metadata"] or {}).get("client_name")
        print(
            f"{_state(row):{_STATE_WIDTH}}  {_when(row['fetched_at']):20}  "
            f"{_when(row['expires_at']):20}  {url:{width}}  {_shown(name)}"
        )
    return 0


def show(args: argparse.Namespace, settings: Settings) -> int:
    """Show one cached entry: its state, times and metadata (escaped)."""
    key = _key(args.target)
    backend = _backend(settings)
    try:
        raw = backend.run(DocumentGet(key))
    finally:
        backend.close()
    if raw is None:
        sys.stderr.write(f"no cached document for {printable(args.target)}\n")
        return 1
    row = described(key, raw, time.time())
    if args.json:
        print(json.dumps(row))
        return 0
    print(f"url: {_shown(row['url'])}")
    print(f"key: {key}")
    print(f"state: {row['state']}")
    if row["reason"] is not None:
        print(f"reason: {printable(row['reason'])}")
    for name in ("fetched_at", "expires_at", "stale_until"):
        if row[name] is not None:
            print(f"{name}: {int(row[name])} ({_when(row[name])})")
    for name, value in (row["metadata"] or {}).items():
        # json.dumps (ensure_ascii) escapes the value; the member name is escaped here.
        print(f"{printable(name)}: {json.dumps(value)}")
    return 0


def evict(args: argparse.Namespace, settings: Settings) -> int:
    """Evict one cached entry, every entry (``--all``) or every refusal (``--refused``): the
    next lookup of each URL fetches its document again."""
    backend = _backend(settings)
    try:
        if args.target is not None:
            if not backend.run(DocumentDelete(_key(args.target))):
                sys.stderr.write(f"no cached document for {printable(args.target)}\n")
                return 1
            sys.stderr.write(f"evicted {printable(args.target)}\n")
            return 0
        now = time.time()
        chosen = [
            key
            for key, raw in backend.run(DocumentList())
            if args.all or described(key, raw, now)["reason"] is not None
        ]
        evicted = sum(bool(backend.run(DocumentDelete(key))) for key in chosen)
    finally:
        backend.close()
    what = "cached documents and refusals" if args.all else "cached refusals"
    sys.stderr.write(f"evicted {evicted} {what}\n")
    return 0


def add_parser(commands: Any) -> None:
    """Register ``cimd list|show|evict`` on the main parser's subcommands."""
    parser = commands.add_parser(
        "cimd", help="list, show and evict cached client metadata documents (DCR_CIMD)"
    )
    sub = parser.add_subparsers(dest="cimd_command", required=True)
    listing = sub.add_parser("list", help="list cached documents and refusals, by URL")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=list_documents)
    showing = sub.add_parser("show", help="show one cached document's state and metadata")
    showing.add_argument("target", metavar="URL", help="the client id URL, or its key")
    showing.add_argument("--json", action="store_true", help="print JSON")
    showing.set_defaults(handler=show)
    drop = sub.add_parser("evict", help="evict cached documents: the next lookup fetches again")
    which = drop.add_mutually_exclusive_group(required=True)
    which.add_argument("target", nargs="?", metavar="URL", help="the client id URL, or its key")
    which.add_argument("--all", action="store_true", help="every cached document and refusal")
    which.add_argument("--refused", action="store_true", help="every cached refusal")
    drop.set_defaults(handler=evict)
