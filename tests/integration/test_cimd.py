"""Client ID Metadata Documents resolved behind the client store's lookups, end to end.

A real HTTPS server on loopback (``support/https_server.py``, a throwaway CA trusted through
``SSL_CERT_FILE``) serves the documents; ``*.test`` names resolve to it through a stand-in for
``socket.getaddrinfo``. Each case runs on the embedded store and on a real ``redis-server``,
through the blocking and the asyncio store. Loopback is allowed with
``DCR_CIMD_PRIVATE_NETWORKS=127.0.0.0/8`` except where the refusal is the point.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support.https_server import DocumentServer, Route, loopback_socket_works
from support.stores import store_settings

from dcr_middleware import AsyncClientStore, ClientStore, InvalidClientError, Settings
from dcr_middleware.core.events import DocumentRefused, DocumentResolved, Event, Observer
from dcr_middleware.core.ops import DocumentGet
from dcr_middleware.core.server_metadata import authorization_server_metadata

HOST = "127.0.0.2"
NAME = "cimd.test"
JSON = (("Content-Type", "application/json"),)
_prefixes = itertools.count()

pytestmark = pytest.mark.skipif(
    not loopback_socket_works(HOST), reason=f"{HOST} cannot be bound on this machine"
)


def _doc(server: DocumentServer, path: str, **members: Any) -> bytes:
    document = {
        "client_id": server.url(NAME, path),
        "client_name": "A document client",
        "redirect_uris": ["https://app.example/callback"],
        "token_endpoint_auth_method": "none",
        **members,
    }
    return json.dumps({k: v for k, v in document.items() if v is not None}).encode()


@pytest.fixture(scope="module")
def _server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocumentServer]:
    server = DocumentServer(tmp_path_factory.mktemp("ca"), HOST, (NAME, HOST))
    yield server
    server.close()


@pytest.fixture
def server(_server: DocumentServer, monkeypatch: pytest.MonkeyPatch) -> DocumentServer:
    """The server with this module's documents, trusted, ``*.test`` names resolving to it."""
    _server.trust(monkeypatch)
    cached = (("Cache-Control", "max-age=600"),)
    _server.routes.clear()
    _server.routes.update(
        {
            "/good": Route(headers=(*JSON, *cached), body=_doc(_server, "/good")),
            "/other": Route(headers=JSON, body=_doc(_server, "/other")),
            "/mismatch": Route(body=_doc(_server, "/mismatch", client_id="https://else.test/x")),
            "/secret": Route(
                body=_doc(_server, "/secret", token_endpoint_auth_method="client_secret_basic")
            ),
            "/with-secret": Route(body=_doc(_server, "/with-secret", client_secret="s3cret")),
            "/bad-redirect": Route(body=_doc(_server, "/bad-redirect", redirect_uris=["nope"])),
            "/javascript": Route(
                body=_doc(_server, "/javascript", redirect_uris=["javascript:alert(1)"])
            ),
            "/short": Route(
                headers=(*JSON, ("Cache-Control", "max-age=1")), body=_doc(_server, "/short")
            ),
            "/html": Route(headers=(("Content-Type", "text/html"),), body=b"<p>hi</p>"),
            "/redirect": Route(302, (("Location", "/good"),), b""),
            "/big": Route(body=b'{"client_id": "' + b"x" * 20_000 + b'"}'),
            "/hang": Route(hang=True),
            "/slow": Route(headers=JSON, body=_doc(_server, "/slow"), delay=0.5),
        }
    )
    _server.seen.clear()
    return _server


KINDS = [
    pytest.param("memory-sync"),
    pytest.param("memory-async"),
    pytest.param("redis-sync", marks=pytest.mark.redis),
    pytest.param("redis-async", marks=pytest.mark.redis),
]


class Lookups:
    """One store (blocking or asyncio) seen through plain calls, with the events it emitted."""

    def __init__(self, kind: str, settings: Settings) -> None:
        self.events: list[Event] = []
        observer = Observer([self.events.append])
        self.sync = kind.endswith("-sync")
        store_class = ClientStore if self.sync else AsyncClientStore
        self.store: Any = store_class(settings, observer=observer)
        self.runner = asyncio.Runner()  # one event loop for the asyncio store's connections

    def call(self, method: str, *args: Any) -> Any:
        result = getattr(self.store, method)(*args)
        return result if self.sync else self.runner.run(result)

    def close(self) -> None:
        self.call("close")
        self.runner.close()

    def outcomes(self) -> list[str]:
        return [
            e.outcome if isinstance(e, DocumentResolved) else f"refused:{e.reason}"
            for e in self.events
            if isinstance(e, DocumentResolved | DocumentRefused)
        ]


def _settings(kind: str, request: pytest.FixtureRequest, **extra: Any) -> Settings:
    options: dict[str, Any] = {
        "cimd": True,
        "cimd_private_networks": ("127.0.0.0/8",),
        "cimd_timeout": 3.0,
        "key_prefix": f"cimd{next(_prefixes)}x{time.monotonic_ns()}",
        **extra,
    }
    return store_settings(kind, request, **options)


@pytest.fixture
def make(request: pytest.FixtureRequest, server: DocumentServer) -> Iterator[Any]:
    """Build :class:`Lookups` for a kind and extra settings; closed at the end of the test."""
    made: list[Lookups] = []

    def build(kind: str, **extra: Any) -> Lookups:
        made.append(Lookups(kind, _settings(kind, request, **extra)))
        return made[-1]

    yield build
    for lookups in made:
        lookups.close()


@pytest.fixture(params=KINDS)
def lookups(request: pytest.FixtureRequest, make: Any) -> Lookups:
    return make(request.param)  # type: ignore[no-any-return]


def test_cimd_get_resolves_a_document_client_and_caches_it(
    lookups: Lookups, server: DocumentServer
) -> None:
    url = server.url(NAME, "/good")
    client = lookups.call("get", url)
    assert client is not None
    assert client.from_document
    assert client.client_id == url
    assert client.redirect_uris == ["https://app.example/callback"]
    assert client.is_public and client.client_secret_hash is None
    assert client.registration_token_hash is None
    assert lookups.call("get", url) == client  # from the cache
    assert lookups.call("require", url).client_id == url
    assert server.paths() == ["/good"]
    assert lookups.outcomes() == ["miss", "hit", "hit"]


def test_cimd_cached_lookup_is_one_storage_operation(
    lookups: Lookups, server: DocumentServer
) -> None:
    url = server.url(NAME, "/good")
    lookups.call("get", url)
    asked: list[Any] = []
    backend = lookups.store.backend
    run = backend.run

    def counted(op: Any) -> Any:
        asked.append(op)
        return run(op)

    backend.run = counted
    assert lookups.call("get", url) is not None
    assert [type(op) for op in asked] == [DocumentGet]  # one GET on Redis: one round trip


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        pytest.param("/mismatch", "client_id", id="mismatched-client-id"),
        pytest.param("/secret", "secret", id="client-secret-basic"),
        pytest.param("/with-secret", "secret", id="client-secret-member"),
        pytest.param("/bad-redirect", "metadata", id="invalid-metadata"),
        pytest.param("/javascript", "metadata", id="javascript-redirect-uri"),
        pytest.param("/html", "content_type", id="text-html"),
        pytest.param("/redirect", "redirect", id="302"),
        pytest.param("/big", "too_large", id="oversize"),
        pytest.param("/hang", "timeout", id="never-answers"),
        pytest.param("/missing", "status", id="404"),
    ],
)
def test_cimd_refused_documents_are_invalid_client(
    lookups: Lookups, server: DocumentServer, path: str, reason: str
) -> None:
    url = server.url(NAME, path)
    assert lookups.call("get", url) is None
    with pytest.raises(InvalidClientError):
        lookups.call("require", url)  # from the negative cache: no second fetch
    assert server.paths() == [path]
    assert lookups.outcomes() == [f"refused:{reason}", f"refused:{reason}"]
    assert [e.cached for e in lookups.events if isinstance(e, DocumentRefused)] == [False, True]


def test_cimd_redirect_target_is_never_requested(lookups: Lookups, server: DocumentServer) -> None:
    assert lookups.call("get", server.url(NAME, "/redirect")) is None
    assert server.paths() == ["/redirect"]


@pytest.mark.parametrize("kind", KINDS)
def test_cimd_loopback_is_refused_without_the_allowance(
    kind: str, make: Any, server: DocumentServer
) -> None:
    lookups = make(kind, cimd_private_networks=())
    assert lookups.call("get", server.url(NAME, "/good")) is None
    assert lookups.call("get", server.url("localhost", "/good")) is None
    assert server.paths() == []
    assert lookups.outcomes() == ["refused:private_address", "refused:private_address"]


def test_cimd_url_rules_refuse_without_a_fetch(lookups: Lookups, server: DocumentServer) -> None:
    for url in (
        server.url(NAME, "/a/../good"),
        server.url(NAME, "/good") + "#frag",
        f"https://user@{NAME}:{server.port}/good",
        f"https://{NAME}:{server.port}",
    ):
        assert lookups.call("get", url) is None, url
    assert lookups.call("get", f"http://{NAME}:{server.port}/good") is None  # not a URL id
    assert server.paths() == []


def test_cimd_authenticate_never_fetches(lookups: Lookups, server: DocumentServer) -> None:
    assert lookups.call("authenticate", server.url(NAME, "/good"), "any secret") is None
    with pytest.raises(InvalidClientError):
        lookups.call("require", server.url(NAME, "/good"), "any secret")
    assert server.paths() == []


@pytest.mark.parametrize("kind", KINDS)
def test_cimd_serves_stale_when_a_refetch_fails(
    kind: str, make: Any, server: DocumentServer
) -> None:
    lookups = make(kind, cimd_cache_min=0, cimd_cache_max=0)
    url = server.url(NAME, "/other")
    first = lookups.call("get", url)
    assert first is not None
    server.routes["/other"] = Route(500, body=b"down")
    assert lookups.call("get", url) == first
    server.routes["/other"] = Route(headers=JSON, body=_doc(server, "/other", client_name="New"))
    assert lookups.call("get", url).metadata["client_name"] == "New"
    assert lookups.outcomes() == ["miss", "stale", "refresh"]


@pytest.mark.parametrize("kind", KINDS)
def test_cimd_second_lookup_within_max_age_is_not_fetched_and_expired_is_refetched(
    kind: str, make: Any, server: DocumentServer
) -> None:
    lookups = make(kind, cimd_cache_min=1, cimd_cache_max=60)
    url = server.url(NAME, "/short")  # Cache-Control: max-age=1
    assert lookups.call("get", url) is not None
    assert lookups.call("get", url) is not None
    assert server.paths() == ["/short"]  # within max-age: no request
    time.sleep(1.2)
    assert lookups.call("get", url) is not None
    assert server.paths() == ["/short", "/short"]  # expired: fetched again
    assert lookups.outcomes() == ["miss", "hit", "refresh"]


@pytest.mark.parametrize("kind", KINDS)
def test_cimd_fetch_budget_per_host(kind: str, make: Any, server: DocumentServer) -> None:
    lookups = make(kind, cimd_fetch_rate_limit="1/minute")
    assert lookups.call("get", server.url(NAME, "/good")) is not None
    assert lookups.call("get", server.url(NAME, "/other")) is None  # same host: budget spent
    assert lookups.call("get", server.url(NAME, "/good")) is not None  # cached: no fetch
    assert server.paths() == ["/good"]
    assert lookups.outcomes() == ["miss", "refused:busy", "hit"]


@pytest.mark.parametrize(
    "kind", ["memory-async", pytest.param("redis-async", marks=pytest.mark.redis)]
)
def test_cimd_concurrent_lookups_share_one_fetch(
    kind: str, make: Any, server: DocumentServer
) -> None:
    lookups = make(kind)
    url = server.url(NAME, "/slow")

    async def many() -> list[Any]:
        return await asyncio.gather(*(lookups.store.get(url) for _ in range(20)))

    found = lookups.runner.run(many())
    assert all(client is not None and client.client_id == url for client in found)
    assert server.paths() == ["/slow"]


def test_cimd_concurrent_blocking_lookups_share_one_fetch(
    make: Any, server: DocumentServer
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    lookups = make("memory-sync")
    url = server.url(NAME, "/slow")
    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(lambda _: lookups.store.get(url), range(8)))
    assert all(client is not None for client in found)
    assert server.paths() == ["/slow"]


def test_cimd_off_leaves_url_ids_unknown_without_a_fetch(make: Any, server: DocumentServer) -> None:
    lookups = make("memory-sync", cimd=False)
    assert lookups.call("get", server.url(NAME, "/good")) is None
    assert server.paths() == []


def test_cimd_discovery_says_supported_only_when_on() -> None:
    on = authorization_server_metadata(Settings(cimd=True), issuer="https://as.example")
    off = authorization_server_metadata(Settings(), issuer="https://as.example")
    assert on["client_id_metadata_document_supported"] is True
    assert "client_id_metadata_document_supported" not in off
