"""The guarded fetcher against a real HTTPS server on loopback, blocking and asyncio alike.

The server (``support/https_server.py``) listens on 127.0.0.2 with a certificate for
``cimd.test`` from a throwaway CA, trusted through ``SSL_CERT_FILE`` only. ``*.test`` names are
answered by a stand-in for ``socket.getaddrinfo`` (there is no DNS server here); every other
name, ``localhost`` included, goes to the real resolver. Loopback is refused unless the policy
allows it, so most cases pass ``allowed_networks=("127.0.0.0/8",)``.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.https_server import DocumentServer, Route, loopback_socket_works

from dcr_middleware.core.fetching import Fetched, FetchPolicy, FetchRefused
from dcr_middleware.fetch import afetch_json, fetch_json

HOST = "127.0.0.2"
NAME = "cimd.test"
LOOPBACK = ("127.0.0.0/8",)
POLICY = FetchPolicy(allowed_networks=LOOPBACK, total_timeout=20.0, cache_max=3600)
JSON = (("Content-Type", "application/json"),)
BIG = 8 * 1024 * 1024  # past any socket buffer: the server notices the client hanging up

Fetch = Callable[[str, FetchPolicy], Fetched]

pytestmark = pytest.mark.skipif(
    not loopback_socket_works(HOST), reason=f"{HOST} cannot be bound on this machine"
)


def _document(path: str) -> bytes:
    return json.dumps({"client_id": f"https://{NAME}{path}", "client_name": "Fetched"}).encode()


ROUTES = {
    "/doc": Route(
        headers=(*JSON, ("Cache-Control", "public, max-age=999999")), body=_document("/doc")
    ),
    "/redirect": Route(302, (("Location", "/target"),), b""),
    "/target": Route(body=_document("/target")),
    "/big": Route(body=b"[" + b"0," * (BIG // 2) + b"0]"),
    "/hang": Route(hang=True),
    "/html": Route(headers=(("Content-Type", "text/html"),), body=b"<html></html>"),
    "/not-json": Route(body=b"{'single': 'quotes'}"),
    "/array": Route(body=b'[{"client_id": "x"}]'),
    "/garbage": Route(raw=b"SMTP ready\r\n\r\n"),
    "/typed": Route(headers=(("Content-Type", "application/cimd+json; charset=utf-8"),)),
}


@pytest.fixture(scope="module")
def _document_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocumentServer]:
    server = DocumentServer(tmp_path_factory.mktemp("ca"), HOST, (NAME, HOST))
    server.routes.update(ROUTES)
    yield server
    server.close()


@pytest.fixture
def server(_document_server: DocumentServer, monkeypatch: pytest.MonkeyPatch) -> DocumentServer:
    """The server, trusted through SSL_CERT_FILE, its record of requests cleared."""
    _document_server.trust(monkeypatch, resolve_test_names=False)  # see lookups
    _document_server.seen.clear()
    return _document_server


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Answer ``*.test`` names: ``missing.test`` does not exist, any other is the server."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host: str, port: object, *args: object, **kwargs: object) -> object:
        if isinstance(host, str) and host.endswith(".test"):
            asked.append(host)
            if host == "missing.test":
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            host = HOST
        return real(host, port, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def _blocking(url: str, policy: FetchPolicy) -> Fetched:
    return fetch_json(url, policy)


def _asyncio(url: str, policy: FetchPolicy) -> Fetched:
    return asyncio.run(afetch_json(url, policy))


@pytest.fixture(params=[_blocking, _asyncio], ids=["blocking", "asyncio"])
def fetch(request: pytest.FixtureRequest, lookups: list[str]) -> Fetch:
    """``fetch_json`` or ``afetch_json`` (run to its end), with ``*.test`` names answered."""
    return request.param  # type: ignore[no-any-return]


def _refusal(fetch: Fetch, url: str, policy: FetchPolicy = POLICY) -> str:
    with pytest.raises(FetchRefused) as refused:
        fetch(url, policy)
    return refused.value.reason


def test_fetch_json_returns_the_document_with_its_max_age_clamped(
    fetch: Fetch, server: DocumentServer
) -> None:
    url = server.url(NAME, "/doc")
    fetched = fetch(url, POLICY)
    assert fetched.url == url
    assert fetched.document == {"client_id": f"https://{NAME}/doc", "client_name": "Fetched"}
    assert fetched.max_age == 3600  # max-age=999999, clamped to cache_max
    assert fetched.fetched_at > 0


def test_fetch_json_accepts_a_structured_json_media_type(
    fetch: Fetch, server: DocumentServer
) -> None:
    assert fetch(server.url(NAME, "/typed"), POLICY).document == {}


def test_fetch_json_connects_to_the_checked_address_with_the_host_as_server_name(
    fetch: Fetch, server: DocumentServer, lookups: list[str]
) -> None:
    fetch(server.url(NAME, "/doc"), POLICY)
    [seen] = server.seen
    assert seen.local_address == HOST  # the address that was resolved and checked
    assert seen.sni == NAME  # the certificate was checked for the name, not the address
    assert seen.host == f"{NAME}:{server.port}"
    assert lookups == [NAME]  # resolved once: no second answer to rebind to


def test_fetch_json_refuses_a_redirect_without_following_it(
    fetch: Fetch, server: DocumentServer
) -> None:
    assert _refusal(fetch, server.url(NAME, "/redirect")) == "redirect"
    assert server.paths() == ["/redirect"]  # /target was never asked for


def test_fetch_json_refuses_an_oversize_document_and_hangs_up(
    fetch: Fetch, server: DocumentServer
) -> None:
    assert _refusal(fetch, server.url(NAME, "/big")) == "too_large"
    [seen] = server.seen
    assert seen.done.wait(30), "the server is still writing"
    assert seen.cut_short, f"the server sent the whole document ({seen.sent} bytes)"


@pytest.mark.timeout(60)
def test_fetch_json_refuses_a_server_that_never_answers(
    fetch: Fetch, server: DocumentServer
) -> None:
    policy = FetchPolicy(allowed_networks=LOOPBACK, connect_timeout=1.0, total_timeout=1.0)
    assert _refusal(fetch, server.url(NAME, "/hang"), policy) == "timeout"


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        pytest.param("/html", "content_type", id="text-html"),
        pytest.param("/not-json", "not_json", id="not-json"),
        pytest.param("/array", "not_json", id="json-array"),
        pytest.param("/missing", "status", id="404"),
        pytest.param("/garbage", "protocol", id="not-http"),
    ],
)
def test_fetch_json_refuses_an_answer_that_is_not_a_json_object(
    fetch: Fetch, server: DocumentServer, path: str, reason: str
) -> None:
    assert _refusal(fetch, server.url(NAME, path)) == reason


def test_fetch_json_refuses_loopback_without_the_allowance(
    fetch: Fetch, server: DocumentServer
) -> None:
    assert _refusal(fetch, server.url(NAME, "/doc"), FetchPolicy()) == "private_address"
    assert _refusal(fetch, server.url(HOST, "/doc"), FetchPolicy()) == "private_address"
    assert server.seen == []


def test_fetch_json_refuses_localhost_without_the_allowance(
    fetch: Fetch, server: DocumentServer
) -> None:
    # The real resolver: localhost is 127.0.0.1 (and perhaps ::1).
    url = f"https://localhost:{server.port}/doc"
    assert _refusal(fetch, url, FetchPolicy()) == "private_address"
    assert server.seen == []


@pytest.mark.parametrize("store", ["system", "other-file"])
def test_fetch_json_refuses_a_certificate_from_an_untrusted_ca(
    fetch: Fetch,
    server: DocumentServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    store: str,
) -> None:
    # The same fetch succeeds with SSL_CERT_FILE naming the test CA (the cases above).
    if store == "system":
        monkeypatch.delenv("SSL_CERT_FILE")
    else:
        (tmp_path / "other.pem").write_text("")
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "other.pem"))
    assert _refusal(fetch, server.url(NAME, "/doc")) == "tls"
    assert server.seen == []


def test_fetch_json_refuses_a_certificate_for_another_name(
    fetch: Fetch, server: DocumentServer
) -> None:
    # other.test resolves to the server too, but its certificate does not name other.test.
    assert _refusal(fetch, server.url("other.test", "/doc")) == "tls"
    assert server.seen == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        pytest.param("https://missing.test/doc", "dns", id="no-such-name"),
        pytest.param("http://cimd.test/doc", "scheme", id="http"),
        pytest.param("https://user@cimd.test/doc", "url", id="userinfo"),
        pytest.param("https://cimd.test/doc#top", "url", id="fragment"),
    ],
)
def test_fetch_json_refuses_before_connecting(
    fetch: Fetch, server: DocumentServer, url: str, reason: str
) -> None:
    assert _refusal(fetch, url) == reason
    assert server.seen == []


def test_fetch_json_refuses_a_port_nobody_listens_on(fetch: Fetch, server: DocumentServer) -> None:
    with socket.socket() as unused:  # bound, never listening: connections to it are refused
        unused.bind((HOST, 0))
        url = f"https://{NAME}:{unused.getsockname()[1]}/doc"
        assert _refusal(fetch, url) == "connect"


def test_fetch_json_refuses_a_denied_host(fetch: Fetch, server: DocumentServer) -> None:
    policy = FetchPolicy(allowed_networks=LOOPBACK, denied_hosts=("*.test",))
    assert _refusal(fetch, server.url(NAME, "/doc"), policy) == "host_denied"
    assert server.seen == []
