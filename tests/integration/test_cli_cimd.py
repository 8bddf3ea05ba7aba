"""The operator commands ``dcr-middleware cimd list|show|evict`` over cached Client ID Metadata
Documents.

The documents are resolved in this process, as the middleware's store does, from a real HTTPS
server on loopback (``support/https_server.py``, its throwaway CA trusted through
``SSL_CERT_FILE``; ``*.test`` names resolve to it) into the session ``redis-server`` under a key
prefix of the test's own. The commands run as subprocesses with a clean environment, reading that
Redis. A document's URL and its ``client_name`` are the client's text: the human-readable output
shows every control and bidi character escaped, ``--json`` the exact value.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import RedisServer
from support.https_server import (
    DocumentServer,
    Route,
    loopback_socket_works,
)

from dcr_middleware.core.cimd import document_key
from dcr_middleware.core.ops import DocumentGet, DocumentPut
from dcr_middleware.core.settings import Settings
from dcr_middleware.storage.redis import RedisBackend
from dcr_middleware.store import ClientStore

HOST = "127.0.0.2"
NAME = "cli.test"
JSON = ("Content-Type", "application/json")
HOSTILE_NAME = "Tool\x1b]0;owned\x07\x1b[2K\r\nfake-row \u202eevil\u2066 \x9b31m"
# Characters that must never reach the terminal raw.
RAW = ("\x1b", "\x07", "\r", "\u202e", "\u2066", "\x9b")

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(
        not loopback_socket_works(HOST), reason=f"{HOST} cannot be bound on this machine"
    ),
]


def _cli() -> str:
    sibling = Path(sys.executable).with_name("dcr-middleware")
    found = str(sibling) if sibling.exists() else shutil.which("dcr-middleware")
    assert found is not None, "the dcr-middleware console script is not installed"
    return found


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DCR_")}
    return subprocess.run(
        [_cli(), "cimd", *args],
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


@pytest.fixture(scope="module")
def _server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocumentServer]:
    server = DocumentServer(tmp_path_factory.mktemp("ca"), HOST, (NAME,))
    yield server
    server.close()


def _document(server: DocumentServer, path: str, **members: Any) -> bytes:
    document = {
        "client_id": server.url(NAME, path),
        "client_name": "A document client",
        "redirect_uris": ["https://app.example/callback"],
        **members,
    }
    return json.dumps(document).encode()


@pytest.fixture
def server(_server: DocumentServer, monkeypatch: pytest.MonkeyPatch) -> DocumentServer:
    """The server with this module's documents, trusted, ``*.test`` names resolving to it."""
    _server.trust(monkeypatch)
    cached = ("Cache-Control", "max-age=600")
    _server.routes.clear()
    _server.routes.update(
        {
            "/good": Route(headers=(JSON, cached), body=_document(_server, "/good")),
            "/stale": Route(body=_document(_server, "/stale", client_name="Stale one")),
            "/mismatch": Route(body=_document(_server, "/mismatch", client_id="https://x.test/")),
            "/hostile": Route(body=_document(_server, "/hostile", client_name=HOSTILE_NAME)),
        }
    )
    _server.seen.clear()
    return _server


class Cache:
    """The session Redis under the test's key prefix: lookups in process, commands outside."""

    def __init__(self, redis_url: str, prefix: str, server: DocumentServer) -> None:
        self.env = {"DCR_REDIS_URL": redis_url, "DCR_KEY_PREFIX": prefix}
        self.server = server
        self.settings = Settings(
            redis_url=redis_url,
            key_prefix=prefix,
            cimd=True,
            cimd_private_networks=("127.0.0.0/8",),
            cimd_timeout=3.0,
        )

    def url(self, path: str) -> str:
        return self.server.url(NAME, path)

    def lookup(self, path: str, **extra: Any) -> Any:
        """Look the document at ``path`` up, as the middleware's store does."""
        settings = dataclasses.replace(self.settings, **extra)
        store = ClientStore(settings)
        try:
            return store.get(self.url(path))
        finally:
            store.close()

    def entry(self, url: str) -> str | None:
        backend = RedisBackend(self.settings)
        try:
            return backend.run(DocumentGet(document_key(url)))
        finally:
            backend.close()

    def plant(self, url: str, entry: dict[str, Any] | str) -> None:
        """Store an entry for ``url`` directly (what another writer of the store could leave)."""
        raw = entry if isinstance(entry, str) else json.dumps(entry)
        backend = RedisBackend(self.settings)
        try:
            backend.run(DocumentPut(document_key(url), raw, 600_000))
        finally:
            backend.close()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run(*args, **self.env)

    def listed(self) -> list[dict[str, Any]]:
        done = self.cli("list", "--json")
        assert done.returncode == 0, done.stderr
        rows: list[dict[str, Any]] = json.loads(done.stdout)
        return rows


@pytest.fixture
def cache(redis_url: str, key_prefix: str, server: DocumentServer) -> Cache:
    return Cache(redis_url, key_prefix, server)


# --- list ---------------------------------------------------------------------------------------


def test_cimd_list_shows_fresh_stale_and_refused_entries(cache: Cache) -> None:
    assert cache.lookup("/good") is not None
    assert cache.lookup("/stale", cimd_cache_min=0, cimd_cache_max=0) is not None  # max-age 0
    assert cache.lookup("/mismatch") is None

    done = cache.cli("list")
    assert done.returncode == 0, done.stderr
    header, *lines = done.stdout.splitlines()
    assert header.split() == ["state", "fetched", "expires", "url", "client_name"]
    assert [line.split()[:2] for line in lines] == [
        ["fresh", time.strftime("%Y-%m-%d", time.gmtime())],
        ["refused:", "client_id"],
        ["stale", time.strftime("%Y-%m-%d", time.gmtime())],
    ]
    for path, line in zip(("/good", "/mismatch", "/stale"), lines, strict=True):
        assert f"  {cache.url(path)}  " in line
    assert lines[0].endswith("  A document client")
    assert lines[1].endswith("  -")  # a refusal has no metadata
    assert lines[2].endswith("  Stale one")

    rows = cache.listed()
    assert [r["url"] for r in rows] == [cache.url(p) for p in ("/good", "/mismatch", "/stale")]
    assert [r["state"] for r in rows] == ["fresh", "refused", "stale"]
    assert [r["reason"] for r in rows] == [None, "client_id", None]
    assert [r["client_name"] for r in rows] == ["A document client", None, "Stale one"]
    assert [r["key"] for r in rows] == [document_key(r["url"]) for r in rows]
    assert set(rows[0]) == {
        "url",
        "key",
        "state",
        "reason",
        "fetched_at",
        "expires_at",
        "stale_until",
        "client_name",
    }
    good, refused, stale = rows
    assert good["fetched_at"] + 600 == pytest.approx(good["expires_at"])
    assert good["stale_until"] > good["expires_at"]
    assert refused["fetched_at"] is None and refused["expires_at"] > time.time()
    assert stale["expires_at"] <= time.time() < stale["stale_until"]


def test_cimd_list_sees_only_its_prefix(cache: Cache, redis_url: str, key_prefix: str) -> None:
    assert cache.lookup("/good") is not None
    other = {"DCR_REDIS_URL": redis_url, "DCR_KEY_PREFIX": key_prefix + "x"}
    done = run("list", **other)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 1  # the header only
    assert json.loads(run("list", "--json", **other).stdout) == []
    assert len(cache.listed()) == 1


def test_cimd_list_and_show_an_unreadable_entry_by_its_key(cache: Cache) -> None:
    # An entry of another version (or anything else under the prefix): listed by its key.
    assert cache.lookup("/good") is not None
    cache.plant("https://other.test/version", {"v": 99, "url": "https://other.test/version"})
    cache.plant("https://other.test/garbage", "\x1b[2J not json")
    done = cache.cli("list")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 4
    assert lines[1].startswith("fresh ")
    keys = sorted(document_key(f"https://other.test/{n}") for n in ("garbage", "version"))
    for line, key in zip(lines[2:], keys, strict=True):  # after the URLs, by key
        assert line.split() == ["unreadable", "-", "-", "(key", f"{key})", "-"]
    rows = cache.listed()
    assert [r["state"] for r in rows] == ["fresh", "unreadable", "unreadable"]
    assert rows[1]["url"] is None and rows[1]["client_name"] is None
    key = document_key("https://other.test/garbage")
    done = cache.cli("show", key)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"url: -\nkey: {key}\nstate: unreadable\n"
    assert cache.cli("evict", key).returncode == 0


# --- show ---------------------------------------------------------------------------------------


def test_cimd_show_prints_the_cached_entry(cache: Cache) -> None:
    client = cache.lookup("/good")
    url = cache.url("/good")
    done = cache.cli("show", url)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:3] == [f"url: {url}", f"key: {document_key(url)}", "state: fresh"]
    assert [line.split(":")[0] for line in lines[3:6]] == [
        "fetched_at",
        "expires_at",
        "stale_until",
    ]
    assert 'client_name: "A document client"' in lines
    assert 'redirect_uris: ["https://app.example/callback"]' in lines
    assert 'token_endpoint_auth_method: "none"' in lines

    shown = json.loads(cache.cli("show", url, "--json").stdout)
    assert shown["metadata"] == client.metadata
    assert shown["url"] == url and shown["state"] == "fresh" and shown["reason"] is None
    # By its key (what list --json gives, when the URL is awkward to type): the same entry.
    assert json.loads(cache.cli("show", document_key(url), "--json").stdout) == shown


def test_cimd_show_of_a_refusal_and_of_an_unknown_url(cache: Cache) -> None:
    assert cache.lookup("/mismatch") is None
    done = cache.cli("show", cache.url("/mismatch"))
    assert done.returncode == 0, done.stderr
    assert "state: refused\nreason: client_id\nexpires_at: " in done.stdout
    assert "fetched_at" not in done.stdout
    shown = json.loads(cache.cli("show", cache.url("/mismatch"), "--json").stdout)
    assert (shown["state"], shown["reason"], shown["metadata"]) == ("refused", "client_id", None)

    for target in (cache.url("/never"), "0" * 64):
        done = cache.cli("show", target)
        assert done.returncode == 1
        assert done.stdout == ""
        assert done.stderr == f"no cached document for {target}\n"


# --- evict --------------------------------------------------------------------------------------


def test_cimd_evict_makes_the_next_lookup_fetch_again(cache: Cache, server: DocumentServer) -> None:
    url = cache.url("/good")
    assert cache.lookup("/good") is not None
    assert cache.lookup("/good") is not None  # from the cache
    assert server.paths() == ["/good"]

    done = cache.cli("evict", url)
    assert done.returncode == 0, done.stderr
    assert done.stderr == f"evicted {url}\n"
    assert cache.entry(url) is None
    again = cache.cli("evict", url)
    assert again.returncode == 1
    assert again.stderr == f"no cached document for {url}\n"

    assert cache.lookup("/good") is not None
    assert server.paths() == ["/good", "/good"]  # fetched again
    assert cache.cli("evict", document_key(url)).returncode == 0  # by its key too
    assert cache.entry(url) is None


def test_cimd_evict_refused_lets_a_changed_policy_apply_at_once(
    cache: Cache, server: DocumentServer
) -> None:
    # Loopback was not allowed: the refusal is cached (DCR_CIMD_NEGATIVE_TTL).
    assert cache.lookup("/stale", cimd_private_networks=()) is None
    assert cache.lookup("/good") is not None
    # Allowed now, but the cached refusal still answers, without a fetch.
    assert cache.lookup("/stale") is None
    assert server.paths() == ["/good"]

    done = cache.cli("evict", "--refused")
    assert done.returncode == 0, done.stderr
    assert done.stderr == "evicted 1 cached refusals\n"
    assert [r["url"] for r in cache.listed()] == [cache.url("/good")]
    assert cache.lookup("/stale") is not None
    assert server.paths() == ["/good", "/stale"]

    done = cache.cli("evict", "--all")
    assert done.returncode == 0, done.stderr
    assert done.stderr == "evicted 2 cached documents and refusals\n"
    assert cache.listed() == []
    assert cache.cli("evict", "--all").stderr == "evicted 0 cached documents and refusals\n"


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["evict"], id="nothing-named"),
        pytest.param(["evict", "https://a.test/x", "--all"], id="url-and-all"),
        pytest.param(["evict", "--all", "--refused"], id="all-and-refused"),
        pytest.param(["show"], id="show-nothing"),
    ],
)
def test_cimd_usage_errors_exit_2(args: list[str], cache: Cache) -> None:
    done = cache.cli(*args)
    assert done.returncode == 2
    assert "usage: dcr-middleware cimd" in done.stderr


# --- without Redis, with Redis down ---------------------------------------------------------


@pytest.mark.parametrize(
    "command", [["list"], ["show", "https://a.test/x"], ["evict", "https://a.test/x"]]
)
def test_cimd_commands_need_redis(command: list[str]) -> None:
    done = run(*command)
    assert done.returncode == 2
    assert "DCR_REDIS_URL: cached client metadata documents are read from Redis" in done.stderr
    assert "inside each server process, for that process only" in done.stderr


def test_cimd_commands_with_redis_down_exit_1(own_redis: RedisServer) -> None:
    own_redis.stop()
    for command in (["list"], ["show", "https://a.test/x"], ["evict", "--all"]):
        done = run(*command, DCR_REDIS_URL=own_redis.url)
        assert done.returncode == 1, (command, done.stderr)
        assert "the client store is unavailable" in done.stderr


# --- output safety ------------------------------------------------------------------------------


def test_cimd_list_and_show_escape_a_hostile_client_name_and_url(cache: Cache) -> None:
    client = cache.lookup("/hostile")
    assert client is not None and client.metadata["client_name"] == HOSTILE_NAME
    # A URL with controls never passes the lookup's checks; an entry holding one (another
    # writer, another version) is still shown escaped.
    hostile_url = "https://cli.test/\x1b]0;owned\x07\r\nfake-row \u202eevil"
    entry = json.loads(cache.entry(cache.url("/hostile")) or "{}")
    cache.plant(hostile_url, {**entry, "url": hostile_url})
    escaped_name = "Tool\\x1b]0;owned\\x07\\x1b[2K\\x0d\\x0afake-row \\u202eevil\\u2066 \\x9b31m"
    escaped_url = "https://cli.test/\\x1b]0;owned\\x07\\x0d\\x0afake-row \\u202eevil"

    done = cache.cli("list")
    assert done.returncode == 0, done.stderr
    assert_no_raw_controls(done)
    lines = done.stdout.splitlines()
    assert len(lines) == 3  # the header and two rows: no fake row
    assert all(line.endswith(escaped_name) for line in lines[1:])
    assert escaped_url in lines[1] or escaped_url in lines[2]

    listed = cache.listed()  # --json keeps the exact values
    assert {r["url"] for r in listed} == {hostile_url, cache.url("/hostile")}
    assert {r["client_name"] for r in listed} == {HOSTILE_NAME}

    done = cache.cli("show", document_key(hostile_url))
    assert done.returncode == 0, done.stderr
    assert_no_raw_controls(done)
    assert done.stdout.startswith(f"url: {escaped_url}\n")
    assert '"Tool\\u001b]0;owned\\u0007' in done.stdout
    shown = json.loads(cache.cli("show", document_key(hostile_url), "--json").stdout)
    assert shown["url"] == hostile_url
    assert shown["metadata"]["client_name"] == HOSTILE_NAME

    # A hostile argument is echoed escaped too.
    for command in ("show", "evict"):
        done = cache.cli(command, hostile_url)
        assert_no_raw_controls(done)
        assert done.returncode == 0, done.stderr
    assert done.stderr == f"evicted {escaped_url}\n"
    done = cache.cli("evict", hostile_url)
    assert done.returncode == 1
    assert_no_raw_controls(done)
    assert done.stderr == f"no cached document for {escaped_url}\n"
