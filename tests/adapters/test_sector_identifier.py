"""OpenID Connect ``sector_identifier_uri`` (Registration §5) through both middlewares, fetched
from a real HTTPS server.

``support/https_server.py`` serves the JSON arrays on 127.0.0.2 with a certificate from a
throwaway CA, trusted through ``SSL_CERT_FILE``; ``*.test`` names resolve to it through a
stand-in for ``socket.getaddrinfo``. The fetch is real outbound HTTPS from the middleware's
store (the guarded fetcher), allowed to loopback with ``DCR_CIMD_PRIVATE_NETWORKS=127.0.0.0/8``
except where the refusal is the point. Registration (``POST``) and update (``PUT``) both check
that every redirect URI is listed; every refusal is ``400 invalid_client_metadata``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support.https_server import DocumentServer, Route, loopback_socket_works

from dcr_middleware import (
    AsyncClientStore,
    ClientStore,
    ConfigurationError,
    DCRMiddleware,
    DCRWSGIMiddleware,
    Settings,
)

from .harness import (
    Answer,
    ASGISide,
    WSGISide,
    asgi_request,
    asgi_side,
    record_count,
    unreachable_asgi,
    unreachable_wsgi,
    wsgi_request,
    wsgi_side,
)

HOST = "127.0.0.2"
NAME = "sector.test"
P = "/register"
SIDES = ("asgi", "wsgi")
ICM = "invalid_client_metadata"
WEB = "https://app.example.com/cb"
OTHER = "https://other.example.net/cb"
UNLISTED = "https://app.example.com/unlisted"
JSON_TYPE = (("Content-Type", "application/json"),)
JSON_HEADERS = {"Content-Type": "application/json"}

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        not loopback_socket_works(HOST), reason=f"{HOST} cannot be bound on this machine"
    ),
]


def _array(*values: Any) -> Route:
    return Route(headers=JSON_TYPE, body=json.dumps(list(values)).encode())


ROUTES = {
    "/sector.json": _array(WEB, OTHER),
    "/one.json": _array(WEB),
    "/object.json": Route(headers=JSON_TYPE, body=json.dumps({"redirect_uris": [WEB]}).encode()),
    "/numbers.json": _array(1, 2),
    "/broken.json": Route(headers=JSON_TYPE, body=b'["https://app.example.com/cb",'),
    "/html": Route(headers=(("Content-Type", "text/html"),), body=b"<p>[]</p>"),
    "/redirect": Route(302, (("Location", "/sector.json"),), b""),
    "/big.json": _array(WEB, *(f"https://app.example.com/{n}" for n in range(400))),
    "/hang": Route(hang=True),
}


@pytest.fixture(scope="module")
def _server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocumentServer]:
    server = DocumentServer(tmp_path_factory.mktemp("ca"), HOST, (NAME, HOST))
    server.routes.update(ROUTES)
    yield server
    server.close()


@pytest.fixture
def server(_server: DocumentServer, monkeypatch: pytest.MonkeyPatch) -> DocumentServer:
    """The server, trusted, ``*.test`` names resolving to it, its record of requests cleared."""
    _server.trust(monkeypatch)
    _server.seen.clear()
    return _server


def _settings(**extra: Any) -> Settings:
    options: dict[str, Any] = {
        "sector_identifier_uris": True,
        "cimd_private_networks": ("127.0.0.0/8",),
        "cimd_connect_timeout": 1.0,
        "cimd_timeout": 1.0,
        "allowed_subject_types": ("public", "pairwise"),
        **extra,
    }
    return Settings(**options)


def side_of(kind: str, settings: Settings) -> ASGISide | WSGISide:
    return asgi_side(settings) if kind == "asgi" else wsgi_side(settings)


async def send(
    side: ASGISide | WSGISide, method: str, path: str, body: dict[str, Any], token: str = ""
) -> Answer:
    headers = dict(JSON_HEADERS)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    content = json.dumps(body).encode()
    if isinstance(side, ASGISide):
        return await asgi_request(side.app, method, path, content=content, headers=headers)
    return wsgi_request(side.app, method, path, content=content, headers=headers)


def _metadata(server: DocumentServer, path: str, *redirect_uris: str) -> dict[str, Any]:
    return {
        "redirect_uris": list(redirect_uris or (WEB,)),
        "sector_identifier_uri": server.url(NAME, path),
    }


def _refused(answer: Answer, *mentions: str) -> str:
    assert answer.status == 400, answer.body
    body = answer.json()
    assert body["error"] == ICM
    description: str = body["error_description"]
    assert description.startswith("sector_identifier_uri")
    for text in mentions:
        assert text in description
    return description


@pytest.mark.parametrize("kind", SIDES)
async def test_sector_registration_with_every_redirect_uri_listed_is_created(
    kind: str, server: DocumentServer
) -> None:
    side = side_of(kind, _settings())
    metadata = _metadata(server, "/sector.json", WEB, OTHER)

    answer = await send(side, "POST", P, metadata)

    assert answer.status == 201, answer.body
    assert answer.json()["sector_identifier_uri"] == metadata["sector_identifier_uri"]
    assert record_count(side.backend) == 1
    assert server.paths() == ["/sector.json"]
    assert server.seen[0].sni == NAME  # fetched from the named host, over verified TLS


@pytest.mark.parametrize("kind", SIDES)
async def test_sector_pairwise_client_with_redirect_uris_on_two_hosts_is_created(
    kind: str, server: DocumentServer
) -> None:
    side = side_of(kind, _settings())
    metadata = {**_metadata(server, "/sector.json", WEB, OTHER), "subject_type": "pairwise"}

    answer = await send(side, "POST", P, metadata)

    assert answer.status == 201, answer.body
    assert answer.json()["subject_type"] == "pairwise"


@pytest.mark.parametrize("kind", SIDES)
async def test_sector_registration_with_an_unlisted_redirect_uri_is_refused(
    kind: str, server: DocumentServer
) -> None:
    side = side_of(kind, _settings())

    answer = await send(side, "POST", P, _metadata(server, "/one.json", WEB, UNLISTED))

    _refused(answer, "does not list the redirect URI", repr(UNLISTED))
    assert record_count(side.backend) == 0
    assert server.paths() == ["/one.json"]


@pytest.mark.parametrize("kind", SIDES)
@pytest.mark.parametrize(
    ("path", "reason"),
    [
        pytest.param("/missing.json", "status", id="404"),
        pytest.param("/object.json", "not_json", id="an-object"),
        pytest.param("/numbers.json", "not_json", id="not-strings"),
        pytest.param("/broken.json", "not_json", id="invalid-json"),
        pytest.param("/html", "content_type", id="text-html"),
        pytest.param("/redirect", "redirect", id="302"),
        pytest.param("/big.json", "too_large", id="oversize"),
        pytest.param("/hang", "timeout", id="never-answers"),
    ],
)
async def test_sector_registration_refuses_a_bad_answer(
    kind: str, path: str, reason: str, server: DocumentServer
) -> None:
    side = side_of(kind, _settings())

    answer = await send(side, "POST", P, _metadata(server, path))

    _refused(answer, "could not be used", f"({reason})")
    assert record_count(side.backend) == 0
    assert server.paths() == [path]  # asked once; a redirect is not followed


@pytest.mark.parametrize("kind", SIDES)
async def test_sector_registration_refuses_loopback_without_the_allowance(
    kind: str, server: DocumentServer
) -> None:
    side = side_of(kind, _settings(cimd_private_networks=()))

    answer = await send(side, "POST", P, _metadata(server, "/sector.json"))

    description = _refused(answer, "its host is not allowed", "(private_address)")
    assert HOST not in description  # the address the name resolved to is not told
    assert server.seen == []


@pytest.mark.parametrize("kind", SIDES)
@pytest.mark.parametrize(
    "uri",
    [
        pytest.param("http://sector.test/sector.json", id="http"),
        pytest.param("https://sector.test/sector.json#x", id="fragment"),
        pytest.param(["https://sector.test/sector.json"], id="not-a-string"),
    ],
)
async def test_sector_registration_refuses_a_bad_uri_without_fetching(
    kind: str, uri: Any, server: DocumentServer
) -> None:
    side = side_of(kind, _settings())

    answer = await send(side, "POST", P, {"redirect_uris": [WEB], "sector_identifier_uri": uri})

    _refused(answer)
    assert server.seen == []


@pytest.mark.parametrize("kind", SIDES)
async def test_sector_registration_is_refused_as_before_when_the_setting_is_off(
    kind: str, server: DocumentServer
) -> None:
    side = side_of(kind, _settings(sector_identifier_uris=False))

    answer = await send(side, "POST", P, _metadata(server, "/sector.json"))

    _refused(
        answer, "is not supported: this server does not fetch it", "DCR_SECTOR_IDENTIFIER_URIS"
    )
    assert server.seen == []


@pytest.mark.parametrize("kind", SIDES)
async def test_sector_registration_shows_a_bounded_part_of_an_unlisted_uri(
    kind: str, server: DocumentServer
) -> None:
    side = side_of(kind, _settings())
    long = "https://app.example.com/" + "a" * 1500

    answer = await send(side, "POST", P, _metadata(server, "/one.json", long))

    description = _refused(answer, "does not list the redirect URI")
    assert long not in description
    assert len(description) < 300


@pytest.mark.parametrize("kind", SIDES)
async def test_sector_fetches_are_charged_to_the_fetch_budget(
    kind: str, server: DocumentServer
) -> None:
    side = side_of(kind, _settings(cimd_fetch_rate_limit="1/minute"))
    metadata = _metadata(server, "/one.json")

    assert (await send(side, "POST", P, metadata)).status == 201
    _refused(await send(side, "POST", P, metadata), "(busy)")
    assert server.paths() == ["/one.json"]  # the second was refused before any fetch


@pytest.mark.parametrize("kind", SIDES)
async def test_sector_update_is_checked_like_a_registration(
    kind: str, server: DocumentServer
) -> None:
    side = side_of(kind, _settings())
    created = (await send(side, "POST", P, {"redirect_uris": [WEB]})).json()
    client_id, token = created["client_id"], created["registration_access_token"]
    path = f"{P}/{client_id}"

    unlisted = {"client_id": client_id, **_metadata(server, "/one.json", WEB, UNLISTED)}
    _refused(await send(side, "PUT", path, unlisted, token), repr(UNLISTED))
    _refused(
        await send(
            side, "PUT", path, {"client_id": client_id, **_metadata(server, "/html")}, token
        ),
        "(content_type)",
    )
    stored = await _stored(side, client_id)
    assert "sector_identifier_uri" not in stored  # the refused updates changed nothing

    listed = {"client_id": client_id, **_metadata(server, "/sector.json", WEB, OTHER)}
    answer = await send(side, "PUT", path, listed, token)

    assert answer.status == 200, answer.body
    assert answer.json()["sector_identifier_uri"] == listed["sector_identifier_uri"]
    assert (await _stored(side, client_id))["sector_identifier_uri"] == listed[
        "sector_identifier_uri"
    ]
    assert server.paths() == ["/one.json", "/html", "/sector.json"]


async def _stored(side: ASGISide | WSGISide, client_id: str) -> dict[str, Any]:
    if isinstance(side, ASGISide):
        client = await side.store.get(client_id)
    else:
        client = side.store.get(client_id)
    assert client is not None
    return client.metadata


@pytest.mark.parametrize("kind", SIDES)
async def test_sector_update_is_refused_when_the_setting_is_off(
    kind: str, server: DocumentServer
) -> None:
    side = side_of(kind, _settings(sector_identifier_uris=False))
    created = (await send(side, "POST", P, {"redirect_uris": [WEB]})).json()
    client_id, token = created["client_id"], created["registration_access_token"]
    update = {"client_id": client_id, **_metadata(server, "/sector.json")}

    answer = await send(side, "PUT", f"{P}/{client_id}", update, token)

    _refused(answer, "is not supported")
    assert server.seen == []


async def test_sector_asgi_and_wsgi_answer_identically(server: DocumentServer) -> None:
    answers = []
    for kind in SIDES:
        for path, uris in (("/sector.json", (WEB, OTHER)), ("/one.json", (WEB, UNLISTED))):
            answer = await send(
                side_of(kind, _settings()), "POST", P, _metadata(server, path, *uris)
            )
            body = answer.json()
            answers.append((kind, answer.status, body.get("error"), body.get("error_description")))
    assert [a[1:] for a in answers[:2]] == [a[1:] for a in answers[2:]]


def test_sector_middleware_refuses_a_store_without_a_fetcher() -> None:
    settings = _settings()
    with pytest.raises(ConfigurationError, match="DCR_SECTOR_IDENTIFIER_URIS"):
        DCRMiddleware(unreachable_asgi, settings, store=AsyncClientStore(Settings()))
    with pytest.raises(ConfigurationError, match="DCR_SECTOR_IDENTIFIER_URIS"):
        DCRWSGIMiddleware(unreachable_wsgi, settings, store=ClientStore(Settings()))


@pytest.mark.redis
@pytest.mark.parametrize("kind", SIDES)
async def test_sector_registration_on_redis_charges_the_shared_budget(
    kind: str, server: DocumentServer, request: pytest.FixtureRequest
) -> None:
    settings = _settings(
        redis_url=request.getfixturevalue("redis_url"),
        key_prefix=f"sector-{kind}-{time.monotonic_ns()}",
        cimd_fetch_total_rate_limit="1/minute",
    )
    metadata = _metadata(server, "/sector.json", WEB, OTHER)
    if kind == "asgi":
        app = DCRMiddleware(unreachable_asgi, settings)
        created = await asgi_request(
            app, "POST", P, content=json.dumps(metadata).encode(), headers=JSON_HEADERS
        )
        again = await asgi_request(
            app, "POST", P, content=json.dumps(metadata).encode(), headers=JSON_HEADERS
        )
        await app.store.close()
    else:
        wsgi = DCRWSGIMiddleware(unreachable_wsgi, settings)
        created = wsgi_request(
            wsgi, "POST", P, content=json.dumps(metadata).encode(), headers=JSON_HEADERS
        )
        again = wsgi_request(
            wsgi, "POST", P, content=json.dumps(metadata).encode(), headers=JSON_HEADERS
        )
        wsgi.store.close()

    assert created.status == 201, created.body
    _refused(again, "(busy)")  # the total budget lives in Redis, shared by every worker
    assert server.paths() == ["/sector.json"]
