"""The ``dcr-middleware`` command (also ``python -m dcr_middleware``)."""

from __future__ import annotations

import argparse
import copy
import logging
import logging.config
import sys
from collections.abc import Sequence
from typing import Any

from .. import __version__
from .._extras import install_hint
from ..core._printable import printable, printable_lines
from ..core.errors import ConfigurationError, StorageError
from ..core.settings import Settings
from . import check as cli_check
from . import cimd as cli_cimd
from . import clients as cli_clients
from . import tokens as cli_tokens

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")  # uvicorn's
LOG_FORMAT = "%(asctime)s %(levelname)-8s %(name)s: %(message)s"


def serve_logging(level: str) -> dict[str, Any]:
    """uvicorn's logging configuration plus a readable handler (time, level, logger, message)
    for the middleware's own logger and for Python warnings (``logging.captureWarnings``)."""
    import uvicorn.config

    config: dict[str, Any] = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["formatters"]["readable"] = {"format": LOG_FORMAT}
    config["handlers"]["readable"] = {
        "class": "logging.StreamHandler",
        "formatter": "readable",
        "stream": "ext://sys.stderr",
    }
    # "trace" is uvicorn's own level, below DEBUG: the library logs nothing lower than DEBUG.
    ours = "DEBUG" if level == "trace" else level.upper()
    for name in ("dcr_middleware", "py.warnings"):
        config["loggers"][name] = {"handlers": ["readable"], "level": ours, "propagate": False}
    return config


def _serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        sys.stderr.write(f"the demo server needs uvicorn: {install_hint('demo')}\n")
        return 2
    from ..demo import create_demo_app

    # Configured before the app is built, so its startup warnings are formatted too.
    log_config = serve_logging(args.log_level)
    logging.config.dictConfig(log_config)
    logging.captureWarnings(True)
    try:
        app = create_demo_app()
    except ConfigurationError as exc:
        sys.stderr.write(f"{printable_lines(str(exc))}\n")
        return 2
    # The middleware resolves client addresses itself (DCR_TRUSTED_PROXIES): uvicorn must not
    # rewrite them from X-Forwarded-For first (its default trusts 127.0.0.1).
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        log_config=log_config,
        proxy_headers=False,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``dcr-middleware`` command."""
    parser = argparse.ArgumentParser(
        prog="dcr-middleware",
        description="OAuth 2.0 Dynamic Client Registration middleware: demo and operations.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="run the demo app wrapped in the middleware (configured by DCR_* variables)",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (8000)")
    serve.add_argument(
        "--log-level",
        default="info",
        choices=LOG_LEVELS,
        type=str.lower,
        help="log level of uvicorn and of the middleware's own log lines (info)",
    )
    serve.set_defaults(handler=_serve)
    cli_tokens.add_parser(commands)
    cli_clients.add_parser(commands)
    cli_cimd.add_parser(commands)
    cli_check.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    if args.command in ("tokens", "clients", "cimd"):
        return _with_settings(args)
    code: int = args.handler(args)
    return code


def _with_settings(args: argparse.Namespace) -> int:
    """Run an operations command (``tokens``, ``clients``, ``cimd``) with settings from the
    environment: exit 2 for bad settings, 1 when the store fails."""
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
