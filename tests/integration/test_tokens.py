"""Initial access tokens on real servers and a real Redis, minted with the real CLI.

Tokens are made by ``dcr-middleware tokens create`` run as a subprocess against the session
``redis-server``; the servers are real gunicorn/uvicorn processes (``serve``) configured only by
``DCR_*`` variables. Checked: a token with N uses admits exactly N of many concurrent
registrations across four workers (the Lua use counter), revocation and expiry take effect at
once, the token's policy travels through Redis, only the token's SHA-256 is stored, and static
``sha256:`` tokens work. ``server_env`` turns the per-address rate limit off; the per-token one
stays at its default unless a test sets it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from support import (
    CONFIDENTIAL,
    JSON,
    RawResponse,
    RedisServer,
    Server,
    every_value,
    free_port,
    raw_post,
    register,
    send_concurrently,
    stored_records,
)

from dcr_middleware.storage.base import token_key

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]

CHALLENGE = 'Bearer error="invalid_token"'
PAYLOAD = json.dumps(CONFIDENTIAL).encode()
ATTEMPTS = 20
USES = 3
DEADLINE = 30.0
REQUIRE = {"DCR_REQUIRE_INITIAL_ACCESS_TOKEN": "true"}
# gunicorn with four workers (the last -w wins over the helpers' default of two).
FOUR_WORKERS = ["-w", "4"]
ORIGIN = "https://inspector.example.com"


def _cli_path() -> str:
    sibling = Path(sys.executable).with_name("dcr-middleware")
    found = str(sibling) if sibling.exists() else shutil.which("dcr-middleware")
    assert found is not None, "the dcr-middleware console script is not installed"
    return found


def cli(*args: str, redis_url: str | None) -> subprocess.CompletedProcess[str]:
    """Run ``dcr-middleware tokens <args>`` with only ``DCR_REDIS_URL`` set (if given)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCR_")}
    if redis_url is not None:
        env["DCR_REDIS_URL"] = redis_url
    return subprocess.run(
        [_cli_path(), "tokens", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def mint(redis_url: str, *args: str) -> dict[str, Any]:
    """``tokens create --json <args>``: the printed token and its record."""
    done = cli("create", "--json", *args, redis_url=redis_url)
    assert done.returncode == 0, done.stderr
    minted: dict[str, Any] = json.loads(done.stdout)
    assert set(minted) == {"token", "id", "uses", "label", "created", "expires", "policy"}
    return minted


def listed(redis_url: str) -> dict[str, dict[str, Any]]:
    """``tokens list --json``, by token id."""
    done = cli("list", "--json", redis_url=redis_url)
    assert done.returncode == 0, done.stderr
    return {row["id"]: row for row in json.loads(done.stdout)}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def bearer(token: str) -> dict[str, str]:
    return {**JSON, "Authorization": f"Bearer {token}"}


def post(server: Server, headers: dict[str, str], body: Any = CONFIDENTIAL) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=10.0) as client:
        return client.post("/register", content=json.dumps(body), headers=headers)


def assert_invalid_token(status: int, headers: Any, body: bytes, token: str) -> None:
    assert status == 401, body
    assert headers["www-authenticate"] == CHALLENGE
    assert json.loads(body)["error"] == "invalid_token"
    assert token.encode() not in body
    assert token not in json.dumps(dict(headers))


def statuses(responses: Sequence[RawResponse]) -> dict[int, int]:
    return dict(Counter(r.status for r in responses))


# --- exactly N uses under concurrency -----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("gunicorn", id="gunicorn-sync-4"),
        pytest.param("gunicorn-uvicorn", id="gunicorn-uvicorn-4"),
    ],
)
def test_minted_token_admits_exactly_its_uses_under_concurrency(
    kind: str,
    serve: Callable[..., Server],
    redis_url: str,
    redis_db: redis.Redis,
    record_figure: Callable[[str, object], None],
) -> None:
    server = serve(kind, redis_url, env=REQUIRE, args=FOUR_WORKERS, log_level="warning")
    minted = mint(redis_url, "--uses", str(USES), "--label", "race")
    assert minted["uses"] == USES
    token = minted["token"]
    requests = [raw_post("/register", PAYLOAD, {"Authorization": f"Bearer {token}"})] * ATTEMPTS

    started = time.perf_counter()
    responses = asyncio.run(send_concurrently(server.port, requests, DEADLINE))
    elapsed = time.perf_counter() - started

    assert statuses(responses) == {201: USES, 401: ATTEMPTS - USES}
    for response in responses:
        if response.status == 401:
            assert_invalid_token(response.status, response.headers, response.body, token)
        else:
            # The token, not the address, was charged: the default DCR_TOKEN_RATE_LIMIT.
            assert response.headers["ratelimit-policy"] == '"token-60/3600";q=60;w=3600'
    created = {json.loads(r.body)["client_id"] for r in responses if r.status == 201}
    assert {key.split("{")[1].rstrip("}") for key in stored_records(redis_db)} == created
    assert redis_db.hget(token_key("dcr", sha(token)), "uses") == "0"
    assert listed(redis_url)[minted["id"]]["uses"] == 0
    # Used up stays used up.
    again = post(server, bearer(token))
    assert_invalid_token(again.status_code, again.headers, again.content, token)
    output = server.output()
    assert "Traceback" not in output
    assert token not in output
    print(f"\n[figures] token race {kind}: {elapsed * 1000:.0f} ms, {USES} of {ATTEMPTS} admitted")
    record_figure(f"token_race_{kind}_elapsed_s", round(elapsed, 3))


# --- the CLI: list, revoke, expiry, policy ------------------------------------------------------


@pytest.mark.server
def test_cli_revoke_makes_a_token_unusable(
    shared_server: Callable[..., Server], redis_url: str, redis_db: redis.Redis
) -> None:
    server = shared_server("uvicorn", redis_url, env=REQUIRE, log_level="warning")
    kept = mint(redis_url, "--uses", "5", "--label", "kept")
    revoked = mint(redis_url, "--uses", "5", "--label", "to revoke")
    assert kept["id"] != revoked["id"]
    assert revoked["id"] == sha(revoked["token"])[:16]
    assert post(server, bearer(revoked["token"])).status_code == 201
    assert listed(redis_url)[revoked["id"]]["uses"] == 4

    too_short = cli("revoke", revoked["id"][:7], redis_url=redis_url)
    assert too_short.returncode == 1
    assert "at least 8" in too_short.stderr
    unknown = cli("revoke", "0123456789abcdef", redis_url=redis_url)
    assert unknown.returncode == 1
    done = cli("revoke", revoked["id"], redis_url=redis_url)
    assert done.returncode == 0, done.stderr
    assert revoked["id"] in done.stderr
    assert revoked["token"] not in done.stdout + done.stderr

    refused = post(server, bearer(revoked["token"]))
    assert_invalid_token(refused.status_code, refused.headers, refused.content, revoked["token"])
    rows = listed(redis_url)
    assert revoked["id"] not in rows
    assert rows[kept["id"]]["uses"] == 5
    assert post(server, bearer(kept["token"])).status_code == 201
    assert len(stored_records(redis_db)) == 2


def test_cli_tokens_run_as_the_documented_acl_user(own_redis: RedisServer) -> None:
    # docs/cli.md's ACL line, as written there: create (with an expiry), list, revoke.
    text = (ROOT / "docs" / "cli.md").read_text()
    line = next(x for x in text.splitlines() if x.startswith("ACL SETUSER dcr-tokens "))
    admin = own_redis.client()
    try:
        admin.execute_command(*line.replace(">another-long-password", ">a-long-password").split())
    finally:
        admin.close()
    url = own_redis.url.replace("redis://", "redis://dcr-tokens:a-long-password@")
    minted = mint(url, "--uses", "2", "--expires", "1h")
    assert listed(url)[minted["id"]]["uses"] == 2
    done = cli("revoke", minted["id"], redis_url=url)
    assert done.returncode == 0, done.stderr
    assert minted["id"] not in listed(url)


@pytest.mark.server
def test_cli_expiring_token_refused_once_expired(
    shared_server: Callable[..., Server], redis_url: str, redis_db: redis.Redis
) -> None:
    server = shared_server("uvicorn", redis_url, env=REQUIRE, log_level="warning")
    minted = mint(redis_url, "--uses", "5", "--expires", "3s")
    token = minted["token"]
    assert minted["expires"] == minted["created"] + 3
    key = token_key("dcr", sha(token))
    assert 0 < redis_db.pttl(key) <= 3000
    # expires_at is whole seconds from a whole-second "now": more than two seconds are left.
    assert post(server, bearer(token)).status_code == 201

    time.sleep(max(0.0, minted["expires"] - time.time()) + 1.0)
    refused = post(server, bearer(token))
    assert_invalid_token(refused.status_code, refused.headers, refused.content, token)
    assert redis_db.exists(key) == 0
    assert minted["id"] not in listed(redis_url)
    assert len(stored_records(redis_db)) == 1


@pytest.mark.server
def test_cli_token_policy_applies_through_redis(
    shared_server: Callable[..., Server], redis_url: str, redis_db: redis.Redis
) -> None:
    server = shared_server("uvicorn", redis_url, env=REQUIRE, log_level="warning")
    minted = mint(
        redis_url,
        "--uses",
        "3",
        "--scopes",
        "read",
        "--redirect-hosts",
        "app.example.com",
        "--rate-limit",
        "3/hour",
    )
    assert minted["policy"] == {
        "allowed_scopes": ["read"],
        "allowed_redirect_hosts": ["app.example.com"],
        "rate_limit": "3/hour",
    }
    headers = bearer(minted["token"])
    scoped = post(server, headers, {**CONFIDENTIAL, "scope": "read write"})
    assert scoped.status_code == 400, scoped.text
    assert scoped.json()["error"] == "invalid_client_metadata"
    elsewhere = post(server, headers, {"redirect_uris": ["https://other.example.net/cb"]})
    assert elsewhere.status_code == 400, elsewhere.text
    assert elsewhere.json()["error"] == "invalid_redirect_uri"
    assert listed(redis_url)[minted["id"]]["uses"] == 3  # refused requests took no use
    created = post(server, headers, {**CONFIDENTIAL, "scope": "read"})
    assert created.status_code == 201, created.text
    assert created.json()["scope"] == "read"
    assert created.headers["ratelimit-policy"] == '"token-3/3600";q=3;w=3600'
    assert listed(redis_url)[minted["id"]]["uses"] == 2
    # The two refused requests were charged to the token's own limit (3/hour) too.
    limited = post(server, headers, {**CONFIDENTIAL, "scope": "read"})
    assert limited.status_code == 429, limited.text
    assert limited.headers["ratelimit-policy"] == '"token-3/3600";q=3;w=3600'
    assert int(limited.headers["retry-after"]) >= 1
    assert listed(redis_url)[minted["id"]]["uses"] == 2
    assert len(stored_records(redis_db)) == 1


@pytest.mark.server
def test_cli_invalid_policy_mints_nothing(redis_url: str, redis_db: redis.Redis) -> None:
    for args in (
        ("--rate-limit", "lots"),
        ("--redirect-hosts", "Not A Host"),
        ("--expires", "soon"),
        ("--uses", "0"),
    ):
        done = cli("create", *args, redis_url=redis_url)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert done.stdout == ""
    assert every_value(redis_db) == {}


# --- stored only as a digest --------------------------------------------------------------------


@pytest.mark.server
def test_token_stored_only_as_its_digest(
    serve: Callable[..., Server], redis_url: str, redis_db: redis.Redis
) -> None:
    server = serve("gunicorn", redis_url, env=REQUIRE, log_level="debug")
    minted = mint(redis_url, "--uses", "4", "--label", "digest only", "--expires", "1h")
    token = minted["token"]
    plain = cli("create", "--uses", "2", redis_url=redis_url)
    assert plain.returncode == 0, plain.stderr
    second = plain.stdout.strip()
    assert second not in plain.stderr
    for each in (token, second):
        response = post(server, bearer(each))
        assert response.status_code == 201, response.text

    values = every_value(redis_db)
    dump = "\n".join(f"{key}\n{value}" for key, value in values.items())
    for each in (token, second):
        assert each not in dump
        assert token_key("dcr", sha(each)) in values
        # The rate-limit bucket is named by a digest prefix, never by the token.
        assert f"dcr:rate:{{token:{sha(each)[:32]}}}" in values
    record = redis_db.hgetall(token_key("dcr", sha(token)))
    assert set(record) == {"uses", "policy", "label", "created", "expires"}
    assert record["uses"] == "3"
    assert record["label"] == "digest only"
    listing = cli("list", redis_url=redis_url)
    assert listing.returncode == 0, listing.stderr
    assert minted["id"] in listing.stdout
    assert "digest only" in listing.stdout
    for each in (token, second):
        assert each not in listing.stdout + listing.stderr
        assert sha(each) not in listing.stdout  # only the 16-digit id is shown
        assert each not in server.output()


# --- the CLI without (a working) Redis ----------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("create", "--uses", "3", "--json"), id="create-json"),
        pytest.param(("create",), id="create"),
        pytest.param(("list",), id="list"),
        pytest.param(("list", "--json"), id="list-json"),
        pytest.param(("revoke", "0123456789abcdef"), id="revoke"),
    ],
)
def test_cli_without_redis_url_exits_2(args: tuple[str, ...]) -> None:
    done = cli(*args, redis_url=None)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""  # in particular, no token that was never stored
    assert "DCR_REDIS_URL" in done.stderr
    assert "Redis" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_with_redis_down_shows_no_token() -> None:
    nobody = f"redis://127.0.0.1:{free_port()}/0"
    done = cli("create", "--json", redis_url=nobody)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stdout == ""
    assert "unavailable" in done.stderr
    assert "Traceback" not in done.stderr


# --- static tokens through a real server --------------------------------------------------------


@pytest.mark.server
def test_static_sha256_token_through_uvicorn(
    serve: Callable[..., Server], redis_url: str, redis_db: redis.Redis
) -> None:
    token = "static-token-for-uvicorn_0123456789"
    other = "second-static-token-plain-000000"
    server = serve(
        "uvicorn",
        redis_url,
        env={
            "DCR_INITIAL_ACCESS_TOKENS": f"sha256:{sha(token).upper()}, {other}",
            "DCR_TOKEN_RATE_LIMIT": "3/hour",
        },
        log_level="debug",
    )
    with httpx.Client(base_url=server.url, timeout=10.0) as client:
        missing = register(client)
        assert_invalid_token(missing.status_code, missing.headers, missing.content, token)
        for wrong in (sha(token), f"sha256:{sha(token)}", token[:-1], "x" * 40):
            refused = client.post(
                "/register", content=json.dumps(CONFIDENTIAL), headers=bearer(wrong)
            )
            assert_invalid_token(refused.status_code, refused.headers, refused.content, token)
        answers = [
            client.post(
                "/register",
                content=json.dumps(CONFIDENTIAL),
                headers={**bearer(token), "Origin": ORIGIN},
            )
            for _ in range(4)
        ]
        assert [a.status_code for a in answers] == [201, 201, 201, 429]
        for answer in answers:
            assert answer.headers["ratelimit-policy"] == '"token-3/3600";q=3;w=3600'
            assert answer.headers["access-control-allow-origin"] == "*"
            assert "retry-after" in answer.headers["access-control-expose-headers"].lower()
        plain = client.post("/register", content=json.dumps(CONFIDENTIAL), headers=bearer(other))
        assert plain.status_code == 201, plain.text
        preflight = client.options(
            "/register",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in preflight.headers
    assert len(stored_records(redis_db)) == 4
    output = server.output()
    assert token not in output
    assert other not in output
    assert "Traceback" not in output
