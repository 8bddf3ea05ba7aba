"""``dcr-middleware check``: validate the configuration and look at the Redis it names.

Exit status: 0 when usable (warnings allowed), 1 when Redis cannot be reached, 2 when the
configuration is invalid.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ._printable import printable, printable_lines
from .errors import ConfigurationError
from .settings import Settings, mask_url

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

    from .storage.connect import REDIS_ERRORS, connection_options, describe, sync_client

    report["redis_url"] = mask_url(settings.redis_url) if settings.redis_url else None
    report["topology"] = (
        "cluster" if settings.redis_cluster else "sentinel" if settings.redis_sentinels else "one"
    )
    where = report["where"] = describe(settings)
    try:
        if report["topology"] == "one" and settings.redis_url is not None:
            client: Any = redis.Redis.from_url(settings.redis_url, **connection_options(settings))
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
        report["error"] = f"cannot reach {where}: {type(exc).__name__}: {exc}"
        return 1
    finally:
        client.close()


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


def check(args: argparse.Namespace) -> int:
    """Validate the ``DCR_*`` settings and, with ``DCR_REDIS_URL``, the Redis server."""
    report: dict[str, Any] = {"ok": False, "warnings": []}
    try:
        settings = Settings.from_env()
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
    report["ok"] = code == 0
    _print(args, report, report.get("error"))
    return code


def _print(args: argparse.Namespace, report: dict[str, Any], error: str | None) -> None:
    if args.json:
        print(json.dumps(report))  # JSON escapes every control character itself
        return
    if error is not None:
        sys.stderr.write(f"{printable_lines(error)}\n")
        return
    lines = ["configuration: ok"]
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
    parser.set_defaults(handler=check)
