"""``dcr-middleware check``: a preflight of the configuration, the code it names, and the Redis.

It validates the ``DCR_*`` settings, reports unknown ``DCR_*`` variables (with the closest
setting's name), imports ``DCR_APP`` (and says which entry point serves it, or checks it against
``--entry``) and ``DCR_EVENT_HOOK``, checks that the extras the settings need are installed,
warns when the app serves ``DCR_PATH`` itself, and pings Redis with the configured timeouts.

Exit status: 0 when usable (warnings allowed), 1 when Redis cannot be reached, 2 when the
configuration is invalid (a bad value, an app or hook that cannot be imported, an app of the
wrong interface for ``--entry``, a missing extra).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from collections.abc import Mapping
from typing import Any

from .. import _loader, _routes
from ..core._printable import printable, printable_lines
from ..core.errors import ConfigurationError
from ..core.events import load_hook
from ..core.settings import Settings, env_name, mask_url, unknown_variables

EMBEDDED_NOTE = (
    "embedded store (DCR_REDIS_URL unset): clients live in the server process, for one process "
    "only, and are lost when it stops"
)


def _config_value(client: Any, name: str) -> str:
    reply = client.config_get(name)
    return str(reply.get(name, ""))


def _inspect_redis(settings: Settings, report: dict[str, Any]) -> int:
    """Check the one Redis, every Redis Cluster primary, or the Sentinel master."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from ..storage.connect import (
        REDIS_ERRORS,
        connection_options,
        describe,
        sync_client,
        unreachable_reason,
    )

    report["redis_url"] = mask_url(settings.redis_url) if settings.redis_url else None
    report["topology"] = (
        "cluster" if settings.redis_cluster else "sentinel" if settings.redis_sentinels else "one"
    )
    where = report["where"] = describe(settings)
    try:
        if report["topology"] == "one" and settings.redis_url is not None:
            # One attempt, within the configured timeouts, whatever redis-py's default retry
            # policy is in the installed release (8.x names 10 retries with backoff).
            client: Any = redis.Redis.from_url(
                settings.redis_url, retry=Retry(NoBackoff(), 0), **connection_options(settings)
            )
        else:
            client = sync_client(settings)
    except ValueError as exc:
        report["error"] = f"DCR_REDIS_URL: {exc}"
        return 2
    try:
        if report["topology"] != "cluster":
            return _inspect_node(client, where, report)
        for node in client.get_primaries():
            code = _inspect_node(client.get_redis_connection(node), where, report)
            if code:
                return code
        return 0
    except REDIS_ERRORS as exc:
        report["error"] = unreachable_reason(settings, exc)
        return 1
    finally:
        client.close()


def _within(settings: Settings) -> str:
    return (
        f" (DCR_REDIS_CONNECT_TIMEOUT={settings.redis_connect_timeout:g}s, "
        f"DCR_REDIS_TIMEOUT={settings.redis_timeout:g}s)"
    )


def _inspect_node(client: Any, where: str, report: dict[str, Any]) -> int:
    from redis.exceptions import RedisError, ResponseError

    try:
        client.ping()
        try:
            report["redis_version"] = str(client.info("server").get("redis_version", ""))
        except ResponseError:  # INFO refused by an ACL
            report["redis_version"] = None
        try:
            policy = _config_value(client, "maxmemory-policy")
            save = _config_value(client, "save")
            appendonly = _config_value(client, "appendonly")
        except ResponseError as exc:  # CONFIG refused by an ACL, or renamed by a managed Redis
            report["warnings"].append(
                f"cannot read the Redis configuration (CONFIG GET refused: {exc}); check by hand "
                "that maxmemory-policy is noeviction and that persistence is on"
            )
            return 0
    except RedisError as exc:
        report["error"] = f"cannot reach {where}: {type(exc).__name__}: {exc}"
        return 1
    report.update(maxmemory_policy=policy, save=save, appendonly=appendonly)
    warnings = []
    if policy != "noeviction":
        warnings.append(
            f"maxmemory-policy is {policy}: when Redis reaches maxmemory it can evict registered "
            "clients; set maxmemory-policy noeviction"
        )
    if not save.strip() and appendonly != "yes":
        warnings.append(
            "persistence is off (no RDB save points, appendonly no): a Redis restart loses "
            "every registered client; enable appendonly or save"
        )
    # A cluster repeats the check on every primary: say each warning once.
    report["warnings"].extend(w for w in warnings if w not in report["warnings"])
    return 0


def _unknown(environ: Mapping[str, str], report: dict[str, Any]) -> dict[str, str]:
    """Warn about unknown ``DCR_*`` variables; the environment without them (so that
    ``Settings.from_env`` does not log them a second time)."""
    unknown = unknown_variables(environ)
    report["warnings"].extend(f"unknown setting {name}: ignored" for name in unknown)
    known = {env_name(name) for name in Settings.__dataclass_fields__}
    return {k: v for k, v in environ.items() if not k.startswith("DCR_") or k in known}


def _code(settings: Settings, entry: _loader.Interface | None, report: dict[str, Any]) -> list[str]:
    """Import what the settings name and look for the extras they need: the problems found."""
    problems: list[str] = []
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as uvicorn and gunicorn do: DCR_APP=myapp:app works
    if settings.metrics and importlib.util.find_spec("prometheus_client") is None:
        problems.append(
            "DCR_METRICS: needs the prometheus_client package; install the extra: "
            "pip install 'dcr-middleware[metrics]'"
        )
    if settings.event_hook is not None:
        try:
            load_hook(settings.event_hook)
        except ConfigurationError as exc:
            problems.extend(exc.problems)
    if settings.app is None and entry is None:
        return problems
    try:
        app = _loader.import_app(settings)
    except ConfigurationError as exc:
        return problems + list(exc.problems)
    interface = report["app_interface"] = _loader.app_interface(app)
    report["entry_point"] = None if interface is None else _loader.ENTRY_POINTS[interface]
    if interface is None:
        report["warnings"].append(
            f"DCR_APP: cannot tell whether {settings.app!r} is a WSGI or an ASGI application"
        )
    elif entry is not None:
        problems.extend(filter(None, [_loader.mismatch(settings, app, entry)]))
    collision = _routes.collision(app, settings)
    if collision is not None:
        report["warnings"].append(collision)
    return problems


def check(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    """Validate the ``DCR_*`` settings of ``environ`` (default ``os.environ``) and what they
    name (app, hook, extras) and, with ``DCR_REDIS_URL``, the Redis server."""
    report: dict[str, Any] = {"ok": False, "warnings": []}
    environ = _unknown(os.environ if environ is None else environ, report)
    try:
        settings = Settings.from_env(environ)
        problems = _code(settings, args.entry, report)
        if problems:
            raise ConfigurationError(problems)
    except ConfigurationError as exc:
        report.update(error="invalid configuration", problems=list(exc.problems))
        _print(args, report, str(exc))
        return 2
    report["key_prefix"] = settings.key_prefix
    if settings.max_clients and settings.client_idle_ttl:
        report["warnings"].append(
            "DCR_MAX_CLIENTS with DCR_CLIENT_IDLE_TTL: a client that expires does not give its "
            "place back; run `dcr-middleware clients purge --idle-for` before the TTL does"
        )
    if not settings.uses_redis:
        report["store"] = "embedded"
        code = 0
    else:
        report["store"] = "redis"
        code = _inspect_redis(settings, report)
        if code == 1:
            report["error"] += _within(settings)
    report["ok"] = code == 0
    _print(args, report, report.get("error"))
    return code


def _print(args: argparse.Namespace, report: dict[str, Any], error: str | None) -> None:
    if args.json:
        print(json.dumps(report))  # JSON escapes every control character itself
        return
    if error is not None:
        sys.stderr.write(f"{printable_lines(error)}\n")
        for warning in report["warnings"]:
            sys.stderr.write(f"WARNING: {printable(warning)}\n")
        return
    lines = ["configuration: ok"]
    if report.get("entry_point"):
        lines.append(f"app: {report['app_interface'].upper()}, served by {report['entry_point']}")
    if report["store"] == "embedded":
        lines.append(f"store: {EMBEDDED_NOTE}")
    else:
        version = report.get("redis_version")
        lines.append(f"store: {report['where']}" + (f" (Redis {version})" if version else ""))
        lines.append(f"key prefix: {report['key_prefix']}")
        if "maxmemory_policy" in report:
            lines.append(f"maxmemory-policy: {report['maxmemory_policy']}")
            lines.append(f"persistence: appendonly {report['appendonly']}, save {report['save']!r}")
    lines.extend(f"WARNING: {warning}" for warning in report["warnings"])
    # Values read from the environment and from Redis (the key prefix, CONFIG replies, error
    # texts) reach the operator's terminal escaped.
    for line in lines:
        print(printable(line))


def add_parser(commands: Any) -> None:
    """Register ``check`` on the main parser's subcommands."""
    parser = commands.add_parser(
        "check", help="validate the configuration and check the Redis it names"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--entry",
        choices=("asgi", "wsgi"),
        help="the entry point DCR_APP will be served by (dcr_middleware.asgi:app or "
        "dcr_middleware.wsgi:app): fail when the app has the other interface",
    )
    parser.set_defaults(handler=check)
