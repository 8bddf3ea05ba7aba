"""``dcr-middleware clients ...``: list, show, delete and purge registered clients in Redis.

Secrets never leave the store through these commands: neither the plaintext ``client_secret``
kept for ``client_secret_jwt`` clients nor the digests of secrets and registration access tokens.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ..core._env import parse_duration
from ..core._printable import printable, printable_lines
from ..core.client import RegisteredClient
from ..core.errors import ConfigurationError, ConflictError
from ..core.ops import ClientRecords, Get, Purge, Release
from ..core.settings import Settings
from ..storage.redis import RedisBackend
from ..store import ClientStore


def _backend(settings: Settings) -> RedisBackend:
    if not settings.uses_redis:
        raise ConfigurationError(
            [
                "DCR_REDIS_URL: registered clients are read from Redis; set it to the "
                "middleware's Redis (the embedded store lives inside the server process)"
            ]
        )
    return RedisBackend(settings)


def _store(settings: Settings) -> ClientStore:
    return ClientStore(settings, backend=_backend(settings))


def _records_and_use(backend: RedisBackend) -> list[tuple[str, int | None]]:
    """Every stored client record with its last noted use (epoch ms, ``None`` when never).

    Plain reads: listing or purging does not count as using a client. On a terminal, standard
    error shows how many were read so far (``read 2500 clients...``).
    """
    shown = False

    def progress(seen: int) -> None:
        nonlocal shown
        sys.stderr.write(f"\rread {seen} clients...")
        sys.stderr.flush()
        shown = True

    try:
        return backend.run(ClientRecords(progress if sys.stderr.isatty() else None))
    finally:
        if shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def _summary(client: RegisteredClient) -> dict[str, Any]:
    return {
        "client_id": client.client_id,
        "client_name": client.metadata.get("client_name"),
        "software_id": client.metadata.get("software_id"),
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "client_id_issued_at": client.client_id_issued_at,
    }


def _details(client: RegisteredClient) -> dict[str, Any]:
    """A client as the operator may see it: no secret, no digest of one."""
    return {
        "client_id": client.client_id,
        "client_id_issued_at": client.client_id_issued_at,
        "client_secret_expires_at": client.client_secret_expires_at,
        "counted": client.counted,
        "token_policy": json.loads(client.token_policy) if client.token_policy else None,
        "metadata": client.metadata,
    }


def _row(row: dict[str, Any]) -> str:
    """One line of ``clients list``: every column is client-supplied text, escaped."""
    return (
        f"{_shown(row['client_id']):24}  {_when(row['client_id_issued_at']):20}  "
        f"{_shown(row['token_endpoint_auth_method']):19}  {_shown(row['software_id']):16}  "
        f"{_shown(row['client_name'])}"
    )


def _shown(value: Any) -> str:
    # Human-readable output only: --json relies on JSON's own escaping (json.dumps escapes every
    # control and non-ASCII character).
    if value is None or value == "":
        return "-"
    return printable(value if isinstance(value, str) else json.dumps(value))


def _when(epoch: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(epoch))


def _matches(client: RegisteredClient, args: argparse.Namespace) -> bool:
    if args.software_id is not None and client.metadata.get("software_id") != args.software_id:
        return False
    if args.name is not None:
        name = client.metadata.get("client_name")
        return isinstance(name, str) and args.name.casefold() in name.casefold()
    return True


def list_clients(args: argparse.Namespace, settings: Settings) -> int:
    """List registered clients, oldest first (never secrets)."""
    if args.limit is not None and args.limit < 1:
        sys.stderr.write("--limit must be at least 1\n")
        return 2
    backend = _backend(settings)
    try:
        found = [RegisteredClient.from_record(r) for r, _ in _records_and_use(backend)]
    finally:
        backend.close()
    chosen = sorted(
        (c for c in found if _matches(c, args)),
        key=lambda c: (c.client_id_issued_at, c.client_id),
    )
    rows = [_summary(c) for c in chosen[: args.limit]]
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'client_id':24}  {'issued':20}  {'auth method':19}  {'software_id':16}  client_name")
    for row in rows:
        print(_row(row))
    if len(chosen) > len(rows):
        sys.stderr.write(f"showing {len(rows)} of {len(chosen)} clients (--limit)\n")
    return 0


def show(args: argparse.Namespace, settings: Settings) -> int:
    """Show one client's stored metadata (never secrets)."""
    backend = _backend(settings)
    try:
        # A plain read (not ClientStore.get): looking a client up here is not a use of it.
        record = backend.run(Get(args.client_id)) if ClientStore.known_id(args.client_id) else None
    finally:
        backend.close()
    client = None if record is None else RegisteredClient.from_record(record)
    if client is None:
        sys.stderr.write(f"no client {args.client_id!r}\n")
        return 1
    details = _details(client)
    if args.json:
        print(json.dumps(details))
        return 0
    expires = details["client_secret_expires_at"]
    print(f"client_id: {_shown(client.client_id)}")
    issued = client.client_id_issued_at
    print(f"client_id_issued_at: {issued} ({_when(issued)})")
    print(f"client_secret_expires_at: {expires} ({_when(expires) if expires else 'never'})")
    print(f"counted: {json.dumps(details['counted'])}")
    print(f"token_policy: {json.dumps(details['token_policy'])}")
    for name, value in client.metadata.items():
        # json.dumps (ensure_ascii) escapes the value; the member name is escaped here.
        print(f"{printable(name)}: {json.dumps(value)}")
    return 0


def delete(args: argparse.Namespace, settings: Settings) -> int:
    """Delete a client (compare-and-set), giving back its DCR_MAX_CLIENTS place if it held one."""
    store = _store(settings)
    try:
        loaded = store.load(args.client_id, note_use=False)
        if loaded is None:
            sys.stderr.write(f"no client {args.client_id!r}\n")
            return 1
        try:
            store.replace(args.client_id, loaded[1], None)
        except ConflictError:
            sys.stderr.write(f"client {args.client_id!r} changed meanwhile; run delete again\n")
            return 1
    finally:
        store.close()
    sys.stderr.write(f"deleted {printable(args.client_id)}\n")
    return 0


def purge(args: argparse.Namespace, settings: Settings) -> int:
    """Delete the clients unused for ``--idle-for`` (last noted use, or registration)."""
    try:
        idle_for = parse_duration(args.idle_for)
    except ValueError as exc:
        sys.stderr.write(f"--idle-for: {printable_lines(str(exc))}\n")
        return 2
    if idle_for < 1:
        sys.stderr.write("--idle-for must be at least 1 second\n")
        return 2
    cutoff = time.time() - idle_for
    backend = _backend(settings)
    purged: list[str] = []
    changed = 0
    try:
        for record, used in _records_and_use(backend):
            client = RegisteredClient.from_record(record)
            last = used / 1000 if used is not None else client.client_id_issued_at
            if last >= cutoff:
                continue
            if not args.dry_run:
                if not backend.run(Purge(client.client_id, record, used)):
                    changed += 1  # used or updated since it was read: kept
                    continue
                if client.counted:
                    backend.run(Release())
            purged.append(client.client_id)
    finally:
        backend.close()
    if args.json:
        print(json.dumps({"purged": purged, "dry_run": args.dry_run, "skipped": changed}))
        return 0
    verb = "would purge" if args.dry_run else "purged"
    idle = printable(args.idle_for)
    sys.stderr.write(f"{verb} {len(purged)} clients idle for {idle} or more\n")
    if changed:
        sys.stderr.write(f"kept {changed} clients that changed while purging\n")
    return 0


def add_parser(commands: Any) -> None:
    """Register ``clients list|show|delete`` on the main parser's subcommands."""
    parser = commands.add_parser("clients", help="list, show, delete and purge registered clients")
    sub = parser.add_subparsers(dest="clients_command", required=True)
    listing = sub.add_parser("list", help="list registered clients, oldest first")
    listing.add_argument("--limit", type=int, help="show at most N clients (the oldest)")
    listing.add_argument("--name", help="only clients whose client_name contains this text")
    listing.add_argument("--software-id", help="only clients with this software_id")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=list_clients)
    showing = sub.add_parser("show", help="show one client's metadata (no secrets)")
    showing.add_argument("client_id", help="the client_id")
    showing.add_argument("--json", action="store_true", help="print JSON")
    showing.set_defaults(handler=show)
    drop = sub.add_parser("delete", help="delete a client")
    drop.add_argument("client_id", help="the client_id")
    drop.set_defaults(handler=delete)
    sweep = sub.add_parser("purge", help="delete clients unused for a while")
    sweep.add_argument(
        "--idle-for",
        required=True,
        help="a duration (90d, 12h, 3600): clients not looked up for that long, or never "
        "looked up and registered that long ago",
    )
    sweep.add_argument("--dry-run", action="store_true", help="only report what would go")
    sweep.add_argument("--json", action="store_true", help="print JSON")
    sweep.set_defaults(handler=purge)
