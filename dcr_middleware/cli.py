"""The ``dcr-middleware`` command (also ``python -m dcr_middleware``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import cli_check, cli_clients, cli_tokens
from ._extras import install_hint
from ._printable import printable, printable_lines
from .errors import ConfigurationError, StorageError
from .settings import Settings


def _serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        sys.stderr.write(f"the demo server needs uvicorn: {install_hint('demo')}\n")
        return 2
    from .demo import create_demo_app

    try:
        app = create_demo_app()
    except ConfigurationError as exc:
        sys.stderr.write(f"{printable_lines(str(exc))}\n")
        return 2
    # The middleware resolves client addresses itself (DCR_TRUSTED_PROXIES): uvicorn must not
    # rewrite them from X-Forwarded-For first (its default trusts 127.0.0.1).
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, proxy_headers=False)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``dcr-middleware`` command."""
    parser = argparse.ArgumentParser(
        prog="dcr-middleware",
        description="OAuth 2.0 Dynamic Client Registration middleware: demo and operations.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="run the demo app wrapped in the middleware (configured by DCR_* variables)",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (8000)")
    serve.add_argument("--log-level", default="info", help="uvicorn log level (info)")
    serve.set_defaults(handler=_serve)
    cli_tokens.add_parser(commands)
    cli_clients.add_parser(commands)
    cli_check.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    if args.command in ("tokens", "clients"):
        return _with_settings(args)
    code: int = args.handler(args)
    return code


def _with_settings(args: argparse.Namespace) -> int:
    """Run an operations command (``tokens``, ``clients``) with settings from the environment:
    exit 2 for bad settings, 1 when the store fails."""
    try:
        settings = Settings.from_env()
        code: int = args.handler(args, settings)
    except ConfigurationError as exc:
        sys.stderr.write(f"{printable_lines(str(exc))}\n")
        return 2
    except StorageError as exc:
        sys.stderr.write(f"{printable(exc.description)}\n")
        return 1
    return code
