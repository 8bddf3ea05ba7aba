"""``dcr-middleware tokens ...``: mint, list and revoke initial access tokens in Redis."""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from typing import Any

from ..core import _env, ratelimit, tokens
from ..core._printable import printable, printable_lines
from ..core.errors import ConfigurationError
from ..core.ops import TokenDelete, TokenList, TokenPut
from ..core.settings import Settings
from ..storage.base import SyncBackend


def _backend(settings: Settings) -> SyncBackend:
    if not settings.uses_redis:
        raise ConfigurationError(
            ["DCR_REDIS_URL: minted tokens live in Redis; set it to the middleware's Redis"]
        )
    from ..storage.redis import RedisBackend

    return RedisBackend(settings)


def _policy(args: argparse.Namespace, settings: Settings) -> tokens.TokenPolicy:
    policy = tokens.TokenPolicy(
        allowed_scopes=_env.parse_list(args.scopes) if args.scopes is not None else None,
        allowed_redirect_hosts=(
            _env.parse_list(args.redirect_hosts) if args.redirect_hosts is not None else None
        ),
        rate_limit=args.rate_limit,
    )
    # Fail now, not on the first registration: the policy must make valid settings.
    if args.rate_limit is not None:
        ratelimit.parse_rate_limits(args.rate_limit)
    policy.apply(settings)
    return policy


def create(args: argparse.Namespace, settings: Settings) -> int:
    """Mint a token and print it once; only its digest is stored."""
    try:
        policy = _policy(args, settings)
        expires_in = _env.parse_duration(args.expires) if args.expires else 0
    except (ValueError, ConfigurationError) as exc:
        sys.stderr.write(f"{printable_lines(str(exc))}\n")
        return 2
    if args.uses < 1 and args.uses != -1:
        sys.stderr.write("--uses must be at least 1 (or -1 for unlimited)\n")
        return 2
    token = secrets.token_urlsafe(tokens.TOKEN_BYTES)
    digest = tokens.digest(token)
    now = int(time.time())
    expires_at = now + expires_in if expires_in else 0
    fields = {
        "uses": str(args.uses),
        "policy": policy.to_json(),
        "label": args.label or "",
        "created": str(now),
        "expires": str(expires_at),
    }
    _backend(settings).run(TokenPut(digest, fields, expires_at))
    if args.json:
        print(json.dumps({"token": token, "id": digest[: tokens.ID_LENGTH], **_shown(fields)}))
    else:
        print(token)
        sys.stderr.write(
            f"token id {digest[: tokens.ID_LENGTH]}: shown once, store it now; "
            f"uses {'unlimited' if args.uses == -1 else args.uses}, "
            f"expires {_when(expires_at)}\n"
        )
    return 0


def list_tokens(args: argparse.Namespace, settings: Settings) -> int:
    """List minted tokens by id (never the tokens themselves)."""
    minted = _backend(settings).run(TokenList())
    rows = [
        {"id": digest[: tokens.ID_LENGTH], **_shown(fields)}
        for digest, fields in sorted(minted, key=lambda t: t[1]["created"])
    ]
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'id':16}  {'uses left':>9}  {'expires':20}  label")
    for row in rows:
        uses = "unlimited" if row["uses"] == -1 else row["uses"]
        label = printable(row["label"])
        print(f"{printable(row['id']):16}  {uses!s:>9}  {_when(row['expires']):20}  {label}")
    return 0


def revoke(args: argparse.Namespace, settings: Settings) -> int:
    """Delete a minted token by its id (a prefix of its digest)."""
    backend = _backend(settings)
    matches = [d for d, _ in backend.run(TokenList()) if d.startswith(args.id.lower())]
    if len(args.id) < 8 or len(matches) != 1:
        sys.stderr.write(f"no single token with id {args.id!r} (give at least 8 characters)\n")
        return 1
    backend.run(TokenDelete(matches[0]))
    sys.stderr.write(f"revoked {matches[0][: tokens.ID_LENGTH]}\n")
    return 0


def _shown(fields: dict[str, str]) -> dict[str, Any]:
    return {
        "uses": int(fields["uses"]),
        "label": fields.get("label", ""),
        "created": int(fields.get("created", "0")),
        "expires": int(fields.get("expires", "0")),
        "policy": json.loads(fields.get("policy") or "{}"),
    }


def _when(epoch: int) -> str:
    return "never" if not epoch else time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(epoch))


def add_parser(commands: Any) -> None:
    """Register ``tokens create|list|revoke`` on the main parser's subcommands."""
    parser = commands.add_parser("tokens", help="mint, list and revoke initial access tokens")
    sub = parser.add_subparsers(dest="tokens_command", required=True)
    make = sub.add_parser("create", help="mint a token (printed once)")
    make.add_argument("--uses", type=int, default=1, help="registrations it admits (-1: any)")
    make.add_argument("--expires", help="lifetime, e.g. 7d, 12h (default: never)")
    make.add_argument("--label", help="a note shown by 'tokens list'")
    make.add_argument("--scopes", help="comma-separated scopes its clients may register")
    make.add_argument("--redirect-hosts", help="comma-separated allowed redirect hosts")
    make.add_argument("--rate-limit", help="its own rate limit, e.g. 100/hour")
    make.add_argument("--json", action="store_true", help="print JSON")
    make.set_defaults(handler=create)
    show = sub.add_parser("list", help="list minted tokens (ids, never tokens)")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=list_tokens)
    drop = sub.add_parser("revoke", help="revoke a token by its id")
    drop.add_argument("id", help="the token id shown by create/list")
    drop.set_defaults(handler=revoke)
