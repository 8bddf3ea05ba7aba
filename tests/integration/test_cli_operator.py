"""The operator commands ``dcr-middleware check`` and ``clients list|show|delete``.

Run as subprocesses with a clean environment against real ``redis-server`` processes: the
session one (shared, each test under its own key prefix) and, where a test changes the Redis
configuration or stops it, one of its own. Clients are registered in-process through
``prepare_registration`` and ``ClientStore.create``, as the middleware does.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from support import RedisServer

from dcr_middleware.core.registration import NewClient, prepare_registration
from dcr_middleware.core.settings import Settings
from dcr_middleware.storage.base import client_key, counter_key
from dcr_middleware.store import ClientStore

pytestmark = pytest.mark.redis

HIDDEN = ("client_secret_hash", "client_secret", "registration_token_hash")


def _cli_path() -> str:
    sibling = Path(sys.executable).with_name("dcr-middleware")
    found = str(sibling) if sibling.exists() else shutil.which("dcr-middleware")
    assert found is not None, "the dcr-middleware console script is not installed"
    return found


def run(
    *args: str, redis_url: str | None, prefix: str | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCR_")}
    if redis_url is not None:
        env["DCR_REDIS_URL"] = redis_url
    if prefix is not None:
        env["DCR_KEY_PREFIX"] = prefix
    env.update(extra)
    return subprocess.run(
        [_cli_path(), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def register(redis_url: str, prefix: str, body: dict[str, Any], *, now: int) -> NewClient:
    settings = Settings.from_env(
        {},
        redis_url=redis_url,
        key_prefix=prefix,
        max_clients=100,
        allowed_auth_methods=("client_secret_basic", "client_secret_jwt", "none"),
    )
    new = prepare_registration(
        json.dumps(body).encode(), settings, now=now, token=secrets.token_urlsafe
    )
    store = ClientStore(settings)
    try:
        store.create(new.client)
    finally:
        store.close()
    return new


@pytest.fixture
def three(redis_url: str, key_prefix: str) -> list[NewClient]:
    """Three clients (counted under DCR_MAX_CLIENTS), issued one second apart in this order."""
    now = int(time.time())
    return [
        register(
            redis_url,
            key_prefix,
            {
                "client_name": "Alpha Tool",
                "software_id": "sw-1",
                "redirect_uris": ["https://app.example.com/cb"],
                "token_endpoint_auth_method": "client_secret_jwt",
            },
            now=now - 2,
        ),
        register(
            redis_url,
            key_prefix,
            {"client_name": "beta", "grant_types": ["client_credentials"]},
            now=now - 1,
        ),
        register(
            redis_url,
            key_prefix,
            {
                "software_id": "sw-1",
                "token_endpoint_auth_method": "none",
                "redirect_uris": ["http://127.0.0.1/cb"],
            },
            now=now,
        ),
    ]


def secrets_of(clients: list[NewClient], redis_url: str, prefix: str) -> list[str]:
    """Every secret, token and stored digest of ``clients``: none may appear in any output."""
    found: list[str] = []
    admin = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        for new in clients:
            found.append(new.response["registration_access_token"])
            if "client_secret" in new.response:
                found.append(new.response["client_secret"])
            record = json.loads(admin.get(client_key(prefix, new.client_id)) or "{}")
            found.extend(str(record[k]) for k in HIDDEN if record.get(k))
    finally:
        admin.close()
    return found


def assert_no_secrets(done: subprocess.CompletedProcess[str], hidden: list[str]) -> None:
    for value in hidden:
        assert value not in done.stdout
        assert value not in done.stderr
    for name in HIDDEN:
        assert f'"{name}"' not in done.stdout
        assert f"{name}:" not in done.stdout


# --- check --------------------------------------------------------------------------------------


def test_check_ok_on_the_session_redis(redis_url: str) -> None:
    done = run("check", redis_url=redis_url)
    assert done.returncode == 0, done.stderr
    assert "configuration: ok" in done.stdout
    assert "maxmemory-policy: noeviction" in done.stdout
    # The session Redis runs without persistence: that is worth a warning, not a failure.
    assert "WARNING: persistence is off" in done.stdout
    assert "WARNING: maxmemory-policy" not in done.stdout

    report = json.loads(run("check", "--json", redis_url=redis_url).stdout)
    assert report["ok"] is True
    assert report["store"] == "redis"
    assert report["maxmemory_policy"] == "noeviction"
    assert report["appendonly"] == "no"
    assert len(report["warnings"]) == 1


def test_check_warns_about_a_cap_with_an_idle_ttl(redis_url: str) -> None:
    extra = {"DCR_MAX_CLIENTS": "100", "DCR_CLIENT_IDLE_TTL": "90d"}
    done = run("check", redis_url=redis_url, **extra)
    assert done.returncode == 0, done.stderr
    assert "WARNING: DCR_MAX_CLIENTS with DCR_CLIENT_IDLE_TTL" in done.stdout
    alone = run("check", redis_url=redis_url, DCR_MAX_CLIENTS="100")
    assert "DCR_CLIENT_IDLE_TTL" not in alone.stdout


def test_check_warns_about_eviction(own_redis: RedisServer) -> None:
    admin = own_redis.client()
    try:
        admin.config_set("maxmemory-policy", "allkeys-lru")
    finally:
        admin.close()
    done = run("check", redis_url=own_redis.url)
    assert done.returncode == 0, done.stderr
    assert "WARNING: maxmemory-policy is allkeys-lru" in done.stdout
    # own_redis persists to an append-only file: no persistence warning.
    assert "persistence is off" not in done.stdout
    report = json.loads(run("check", "--json", redis_url=own_redis.url).stdout)
    assert report["ok"] is True
    assert report["maxmemory_policy"] == "allkeys-lru"
    assert [w for w in report["warnings"] if "allkeys-lru" in w]


def test_check_without_config_permission_warns(own_redis: RedisServer) -> None:
    admin = own_redis.client()
    try:
        admin.acl_setuser(
            "ops",
            enabled=True,
            passwords=["+a-long-password"],
            keys=["*"],
            commands=["+@all", "-config"],
        )
    finally:
        admin.close()
    url = own_redis.url.replace("redis://", "redis://ops:a-long-password@")
    done = run("check", redis_url=url)
    assert done.returncode == 0, done.stderr
    assert "WARNING: cannot read the Redis configuration" in done.stdout
    assert "a-long-password" not in done.stdout + done.stderr
    assert "redis://ops:***@" in done.stdout


def test_check_with_bad_configuration_exits_2(redis_url: str) -> None:
    done = run("check", redis_url=redis_url, DCR_RATE_LIMIT="10/fortnight")
    assert done.returncode == 2
    assert "DCR_RATE_LIMIT" in done.stderr
    report = json.loads(
        run("check", "--json", redis_url=redis_url, DCR_RATE_LIMIT="10/fortnight").stdout
    )
    assert report["ok"] is False
    assert any("DCR_RATE_LIMIT" in p for p in report["problems"])


def test_check_with_redis_down_exits_1(own_redis: RedisServer) -> None:
    own_redis.stop()
    done = run("check", redis_url=own_redis.url)
    assert done.returncode == 1
    assert f"cannot reach Redis at {own_redis.url}" in done.stderr
    report = json.loads(run("check", "--json", redis_url=own_redis.url).stdout)
    assert report["ok"] is False
    assert "cannot reach Redis" in report["error"]


def test_check_without_redis_reports_the_embedded_store() -> None:
    done = run("check", redis_url=None)
    assert done.returncode == 0, done.stderr
    assert "embedded store" in done.stdout
    assert json.loads(run("check", "--json", redis_url=None).stdout)["store"] == "embedded"


# --- clients ------------------------------------------------------------------------------------


def test_list_sorted_filtered_and_without_secrets(
    redis_url: str, key_prefix: str, three: list[NewClient]
) -> None:
    hidden = secrets_of(three, redis_url, key_prefix)
    # Two secrets and their digests, three tokens and their digests, one stored plaintext.
    assert len(hidden) == 11
    ids = [c.client_id for c in three]

    done = run("clients", "list", redis_url=redis_url, prefix=key_prefix)
    assert done.returncode == 0, done.stderr
    assert_no_secrets(done, hidden)
    lines = done.stdout.splitlines()
    assert lines[0].split()[:2] == ["client_id", "issued"]
    assert [line.split()[0] for line in lines[1:]] == ids
    assert "client_secret_jwt" in lines[1] and "Alpha Tool" in lines[1]

    done = run("clients", "list", "--json", redis_url=redis_url, prefix=key_prefix)
    assert done.returncode == 0, done.stderr
    assert_no_secrets(done, hidden)
    rows = json.loads(done.stdout)
    assert [r["client_id"] for r in rows] == ids
    assert set(rows[0]) == {
        "client_id",
        "client_name",
        "software_id",
        "token_endpoint_auth_method",
        "client_id_issued_at",
    }
    assert rows[2]["client_name"] is None
    assert rows[2]["token_endpoint_auth_method"] == "none"

    def listed(*args: str) -> list[str]:
        done = run("clients", "list", "--json", *args, redis_url=redis_url, prefix=key_prefix)
        assert done.returncode == 0, done.stderr
        return [r["client_id"] for r in json.loads(done.stdout)]

    assert listed("--software-id", "sw-1") == [ids[0], ids[2]]
    assert listed("--name", "ALPHA") == [ids[0]]
    assert listed("--name", "a") == [ids[0], ids[1]]
    assert listed("--limit", "2") == ids[:2]
    assert listed("--software-id", "sw-1", "--limit", "1") == [ids[0]]
    assert listed("--software-id", "nope") == []


def test_list_sees_only_its_prefix(redis_url: str, key_prefix: str, three: list[NewClient]) -> None:
    done = run("clients", "list", "--json", redis_url=redis_url, prefix=key_prefix + "x")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_show_without_secrets(redis_url: str, key_prefix: str, three: list[NewClient]) -> None:
    hidden = secrets_of(three, redis_url, key_prefix)
    first = three[0]
    done = run("clients", "show", first.client_id, redis_url=redis_url, prefix=key_prefix)
    assert done.returncode == 0, done.stderr
    assert_no_secrets(done, hidden)
    assert f"client_id: {first.client_id}" in done.stdout
    assert 'client_name: "Alpha Tool"' in done.stdout
    assert "counted: true" in done.stdout

    done = run("clients", "show", first.client_id, "--json", redis_url=redis_url, prefix=key_prefix)
    assert done.returncode == 0, done.stderr
    assert_no_secrets(done, hidden)
    shown = json.loads(done.stdout)
    assert set(shown) == {
        "client_id",
        "client_id_issued_at",
        "client_secret_expires_at",
        "counted",
        "token_policy",
        "metadata",
    }
    assert shown["metadata"] == first.client.metadata
    assert shown["client_id_issued_at"] == first.client.client_id_issued_at


def test_delete_then_show_and_delete_again(
    redis_url: str, key_prefix: str, three: list[NewClient]
) -> None:
    admin = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert admin.get(counter_key(key_prefix)) == "3"
        target = three[1].client_id
        done = run("clients", "delete", target, redis_url=redis_url, prefix=key_prefix)
        assert done.returncode == 0, done.stderr
        assert f"deleted {target}" in done.stderr
        # The DCR_MAX_CLIENTS place of the counted client is given back.
        assert admin.get(counter_key(key_prefix)) == "2"
        assert admin.get(client_key(key_prefix, target)) is None
    finally:
        admin.close()

    done = run("clients", "show", target, redis_url=redis_url, prefix=key_prefix)
    assert done.returncode == 1
    assert "no client" in done.stderr
    done = run("clients", "delete", target, redis_url=redis_url, prefix=key_prefix)
    assert done.returncode == 1
    done = run("clients", "list", "--json", redis_url=redis_url, prefix=key_prefix)
    assert [r["client_id"] for r in json.loads(done.stdout)] == [
        three[0].client_id,
        three[2].client_id,
    ]


def test_unknown_or_malformed_client_ids(redis_url: str, key_prefix: str) -> None:
    for client_id in ("no-such-client", "dcr:*", "a" * 300):
        for command in ("show", "delete"):
            done = run("clients", command, client_id, redis_url=redis_url, prefix=key_prefix)
            assert done.returncode == 1, (command, client_id, done.stderr)


@pytest.mark.parametrize("command", [["list"], ["show", "abc"], ["delete", "abc"]])
def test_clients_need_redis(command: list[str]) -> None:
    done = run("clients", *command, redis_url=None)
    assert done.returncode == 2
    assert "DCR_REDIS_URL" in done.stderr


def test_clients_with_redis_down_exit_1(own_redis: RedisServer) -> None:
    own_redis.stop()
    for command in (["list"], ["show", "abc"], ["delete", "abc"]):
        done = run("clients", *command, redis_url=own_redis.url)
        assert done.returncode == 1, (command, done.stderr)
        assert "the client store is unavailable" in done.stderr


def test_bad_limit_exits_2(redis_url: str, key_prefix: str) -> None:
    done = run("clients", "list", "--limit", "0", redis_url=redis_url, prefix=key_prefix)
    assert done.returncode == 2


# --- clients purge --idle-for ------------------------------------------------------------------


def test_clients_purge_deletes_only_idle_clients(redis_url: str, key_prefix: str) -> None:
    now = int(time.time())
    body = {"redirect_uris": ["https://app.example.com/cb"]}
    old_unused = register(redis_url, key_prefix, body, now=now - 10 * 86400)
    old_but_used = register(redis_url, key_prefix, body, now=now - 10 * 86400)
    recent = register(redis_url, key_prefix, body, now=now - 3600)
    settings = Settings(redis_url=redis_url, key_prefix=key_prefix, max_clients=100)
    store = ClientStore(settings)
    try:
        assert store.get(old_but_used.client_id) is not None  # a lookup notes the use
    finally:
        store.close()
    admin = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert admin.get(counter_key(key_prefix)) == "3"

        dry = run(
            "clients", "purge", "--idle-for", "7d", "--dry-run", "--json",
            redis_url=redis_url, prefix=key_prefix,
        )  # fmt: skip
        assert dry.returncode == 0, dry.stderr
        assert json.loads(dry.stdout) == {
            "purged": [old_unused.client_id],
            "dry_run": True,
            "skipped": 0,
        }
        assert admin.exists(client_key(key_prefix, old_unused.client_id)) == 1

        done = run("clients", "purge", "--idle-for", "7d", redis_url=redis_url, prefix=key_prefix)
        assert done.returncode == 0, done.stderr
        assert "purged 1 clients idle for 7d or more" in done.stderr
        assert admin.exists(client_key(key_prefix, old_unused.client_id)) == 0
        for kept in (old_but_used, recent):
            assert admin.exists(client_key(key_prefix, kept.client_id)) == 1
        assert admin.get(counter_key(key_prefix)) == "2"  # its DCR_MAX_CLIENTS place came back

        # Listing and showing are plain reads: they do not make a client look used.
        run("clients", "list", redis_url=redis_url, prefix=key_prefix)
        run("clients", "show", recent.client_id, redis_url=redis_url, prefix=key_prefix)
        assert admin.exists(f"{key_prefix}:used:{{{recent.client_id}}}") == 0
    finally:
        admin.close()


@pytest.mark.parametrize("value", ["soon", "0", "-5"])
def test_clients_purge_refuses_a_bad_duration(value: str, redis_url: str, key_prefix: str) -> None:
    done = run("clients", "purge", "--idle-for", value, redis_url=redis_url, prefix=key_prefix)
    assert done.returncode == 2
    assert "--idle-for" in done.stderr
