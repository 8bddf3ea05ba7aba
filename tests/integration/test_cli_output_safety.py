"""What the operator commands print is safe for a terminal and holds no password.

A client chooses its ``client_name`` and ``software_id``: ESC sequences in them could retitle
the operator's window, erase lines or draw fake rows, and bidi controls could reorder a column.
The human-readable output shows every such character escaped (``\\x1b``, ``\\u202e``); ``--json``
keeps the exact value, JSON-escaped. ``dcr-middleware check`` names the Redis it checks with
every password masked, the one in the query string (``?password=``) included.
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

import pytest
from support import RedisServer

from dcr_middleware.core.registration import prepare_registration
from dcr_middleware.core.settings import Settings
from dcr_middleware.store import ClientStore

pytestmark = pytest.mark.redis

HOSTILE_NAME = "Tool\x1b]0;owned\x07\x1b[2K\r\nfake-row \u202eevil\u2066 \x9b31m"
HOSTILE_SOFTWARE = "sw\x1b[1;1H\u200f"
# Characters that must never reach the terminal raw.
RAW = ("\x1b", "\x07", "\r", "\u202e", "\u2066", "\u200f", "\x9b")


def _cli() -> str:
    sibling = Path(sys.executable).with_name("dcr-middleware")
    found = str(sibling) if sibling.exists() else shutil.which("dcr-middleware")
    assert found is not None, "the dcr-middleware console script is not installed"
    return found


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DCR_")}
    return subprocess.run(
        [_cli(), *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="surrogateescape",
        timeout=60,
        check=False,
    )


def assert_no_raw_controls(done: subprocess.CompletedProcess[str]) -> None:
    for char in RAW:
        assert char not in done.stdout, (char, done.stdout)
        assert char not in done.stderr, (char, done.stderr)


@pytest.fixture
def hostile_client(redis_url: str, key_prefix: str) -> str:
    settings = Settings.from_env({}, redis_url=redis_url, key_prefix=key_prefix)
    body = {
        "client_name": HOSTILE_NAME,
        "software_id": HOSTILE_SOFTWARE,
        "redirect_uris": ["https://app.example.com/cb"],
    }
    new = prepare_registration(
        json.dumps(body).encode(), settings, now=int(time.time()), token=secrets.token_urlsafe
    )
    store = ClientStore(settings)
    try:
        store.create(new.client)
    finally:
        store.close()
    return new.client_id


def test_cli_clients_list_escapes_control_and_bidi_characters(
    redis_url: str, key_prefix: str, hostile_client: str
) -> None:
    done = run("clients", "list", DCR_REDIS_URL=redis_url, DCR_KEY_PREFIX=key_prefix)
    assert done.returncode == 0, done.stderr
    assert_no_raw_controls(done)
    lines = done.stdout.splitlines()
    assert len(lines) == 2  # the header and one row: no fake row
    row = lines[1]
    assert row.startswith(hostile_client)
    assert "Tool\\x1b]0;owned\\x07\\x1b[2K\\x0d\\x0afake-row \\u202eevil\\u2066 \\x9b31m" in row
    assert "sw\\x1b[1;1H\\u200f" in row

    # --json keeps the exact values (JSON escapes them).
    done = run("clients", "list", "--json", DCR_REDIS_URL=redis_url, DCR_KEY_PREFIX=key_prefix)
    assert_no_raw_controls(done)
    [listed] = json.loads(done.stdout)
    assert listed["client_name"] == HOSTILE_NAME
    assert listed["software_id"] == HOSTILE_SOFTWARE


def test_cli_clients_show_escapes_control_and_bidi_characters(
    redis_url: str, key_prefix: str, hostile_client: str
) -> None:
    done = run(
        "clients", "show", hostile_client, DCR_REDIS_URL=redis_url, DCR_KEY_PREFIX=key_prefix
    )
    assert done.returncode == 0, done.stderr
    assert_no_raw_controls(done)
    assert f"client_id: {hostile_client}" in done.stdout
    assert '"Tool\\u001b]0;owned\\u0007' in done.stdout
    done = run(
        "clients",
        "show",
        hostile_client,
        "--json",
        DCR_REDIS_URL=redis_url,
        DCR_KEY_PREFIX=key_prefix,
    )
    assert json.loads(done.stdout)["metadata"]["client_name"] == HOSTILE_NAME


def test_cli_tokens_list_escapes_the_label(redis_url: str, key_prefix: str) -> None:
    env = {"DCR_REDIS_URL": redis_url, "DCR_KEY_PREFIX": key_prefix}
    made = run("tokens", "create", "--label", "ci\x1b[2J\u202ebot", **env)
    assert made.returncode == 0, made.stderr
    done = run("tokens", "list", **env)
    assert done.returncode == 0, done.stderr
    assert_no_raw_controls(done)
    assert "ci\\x1b[2J\\u202ebot" in done.stdout
    assert json.loads(run("tokens", "list", "--json", **env).stdout)[0]["label"] == (
        "ci\x1b[2J\u202ebot"
    )


def test_cli_check_masks_a_password_in_the_query_string(own_redis: RedisServer) -> None:
    password = secrets.token_urlsafe(16)
    admin = own_redis.client()
    try:
        admin.config_set("requirepass", password)
    finally:
        admin.close()
    url = f"{own_redis.url}?password={password}"

    done = run("check", DCR_REDIS_URL=url)
    assert done.returncode == 0, done.stderr
    assert password not in done.stdout + done.stderr
    assert f"store: Redis at {own_redis.url}?password=***" in done.stdout

    done = run("check", "--json", DCR_REDIS_URL=url)
    assert password not in done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["redis_url"] == f"{own_redis.url}?password=***"

    # A wrong password: the refusal is reported, the password still hidden.
    wrong = f"{own_redis.url}?password=not-{password}"
    done = run("check", DCR_REDIS_URL=wrong)
    assert done.returncode == 1
    assert password not in done.stdout + done.stderr
    assert "cannot reach Redis at" in done.stderr
