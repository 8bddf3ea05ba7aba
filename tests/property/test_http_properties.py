"""Hypothesis over the HTTP surface of both middlewares, with the clients in a real Redis.

Every example is sent the same way to :class:`DCRMiddleware` (ASGI, driven as uvicorn drives an
app: a scope with the percent-decoded path and ``http.request`` messages) and to
:class:`DCRWSGIMiddleware` (WSGI, under ``wsgiref.validate``, with the environ gunicorn builds:
``PATH_INFO`` decoded as latin-1, ``wsgi.input_terminated``). Both store in the session's
``redis-server`` under a key prefix of the test's own. The bodies are arbitrary bytes, arbitrary
JSON, and metadata-like objects with random values for the RFC 7591 / OpenID Connect field names;
the headers are arbitrary too (``Content-Type`` variants, ``Content-Length`` lies, ``Authorization``
junk, random names and values); the paths are anything under (and next to) the registration path.

The properties, checked on every example:

- the request is passed through to the wrapped app by both sides or by neither, and a passed-through
  request reaches the app with its body unread;
- an answer of the middleware has a documented status, never ``500`` (nor ``503``: Redis is up);
- every ``4xx`` body is a JSON object whose ``error`` is the RFC code the docs give for that status,
  with a string ``error_description`` of RFC 6749 §5.2 characters;
- ASGI and WSGI give the same status and the same ``error`` for the same request;
- a refusal changes nothing in Redis (every key under the prefix, compared byte for byte with
  ``DUMP``); a ``201`` adds exactly one key, a complete client that the store reads back, and a
  successful update or delete touches only the client it names;
- no secret or token the request carried comes back in an error.

Profiles (``HYPOTHESIS_PROFILE``): ``ci``, the default, runs 2,350 examples, derandomized and
without an example database, so every run is the same; ``release`` runs 25 times as many (58,750),
randomly (see ``docs/security.md``, "Property-based tests").
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import io
import itertools
import json
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, unquote_to_bytes
from wsgiref.validate import validator

import pytest
import redis
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from dcr_middleware import (
    AsyncClientStore,
    ClientStore,
    DCRMiddleware,
    DCRWSGIMiddleware,
    Settings,
)
from dcr_middleware.core.client_metadata import LOCALIZABLE, ClientMetadata
from dcr_middleware.storage.base import client_key

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from support import RedisServer

pytestmark = [
    pytest.mark.redis,
]

# --- profiles -------------------------------------------------------------------------------------

_COMMON: dict[str, Any] = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,  # one rig per test, shared by its examples
        HealthCheck.data_too_large,
    ],
}
settings.register_profile("dcr-http-ci", derandomize=True, **_COMMON)
settings.register_profile("dcr-http-release", derandomize=False, print_blob=True, **_COMMON)
# HYPOTHESIS_PROFILE=release for the long run; anything else is the CI run.
PROFILE = "release" if os.environ.get("HYPOTHESIS_PROFILE") == "release" else "ci"
SCALE = 25 if PROFILE == "release" else 1
# Only this module's tests get the profile: loading it globally would change the unit tests' runs.
BASE = settings.get_profile(f"dcr-http-{PROFILE}")
if PROFILE == "release":
    # The long run takes longer than the suite's per-test timeout (pytest-timeout, 300 s).
    pytestmark += [pytest.mark.timeout(3 * 3600), pytest.mark.slow]


def examples(count: int) -> settings:
    """The profile's settings with ``count`` examples (times the profile's scale)."""
    return settings(BASE, max_examples=count * SCALE)


# --- what the docs promise ------------------------------------------------------------------------

P = "/register"
MAX_BODY = 4096  # small, so that over-limit bodies are cheap to generate
# docs/http-api.md: the error code of each status.
ERRORS_BY_STATUS: dict[int, frozenset[str]] = {
    400: frozenset(
        {
            "invalid_request",
            "invalid_client_metadata",
            "invalid_redirect_uri",
            "invalid_software_statement",
            "unapproved_software_statement",
        }
    ),
    401: frozenset({"invalid_token"}),
    403: frozenset({"access_denied"}),
    405: frozenset({"invalid_request"}),
    409: frozenset({"invalid_request"}),
    411: frozenset({"invalid_request"}),
    413: frozenset({"invalid_request"}),
    415: frozenset({"invalid_request"}),
    429: frozenset({"too_many_requests"}),
}
# RFC 6749 §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E.
DESCRIPTION_CHARS = frozenset(chr(c) for c in range(0x20, 0x7F)) - {'"', "\\"}
# A sequential run never races, so 409 would be a compare-and-set bug; gunicorn terminates the
# input, so 411 would be too. 503 needs Redis down and 429 a rate limit: neither is on here.
REGISTRATION = frozenset({201, 204, 400, 401, 403, 413, 415})
MANAGEMENT = frozenset({200, 204, 400, 401, 403, 405, 413, 415})
SERVER_SET = (
    "client_id",
    "client_id_issued_at",
    "client_secret",
    "client_secret_expires_at",
    "registration_client_uri",
    "registration_access_token",
)
WRAPPED = "x-wrapped-app"
SIDES = ("asgi", "wsgi")


def sha(data: bytes | str) -> str:
    """Hex SHA-256, as the store keeps secrets and tokens."""
    return hashlib.sha256(data if isinstance(data, bytes) else data.encode()).hexdigest()


# --- one request, as a server hands it over -------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One request after the HTTP server's framing: ``body`` is what the app may read."""

    method: str
    raw_path: str  # percent-encoded ASCII, as on the request line
    query: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    chunks: int = 1  # how many http.request messages carry the body under ASGI
    peer: str = "127.0.0.1"

    def values(self) -> list[str]:
        """Everything the client sent, as text (for the secret-echo check)."""
        return [
            self.raw_path,
            self.query,
            *(v for _, v in self.headers),
            self.body.decode("latin-1"),
        ]


@dataclass(frozen=True)
class Answer:
    """One answer: status, lower-cased headers (repeats joined), body."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def passed_through(self) -> bool:
        return WRAPPED in self.headers

    def json(self) -> Any:
        return json.loads(self.body)

    def error(self) -> str | None:
        """The ``error`` of a 4xx answer (checked to exist by :func:`check_answer`)."""
        return str(self.json()["error"]) if 400 <= self.status < 500 and self.body else None


def _answer(status: int, pairs: Iterable[tuple[str, str]], body: bytes) -> Answer:
    headers: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return Answer(status, headers, body)


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def asgi_call(app: Callable[[Scope, Receive, Send], Awaitable[None]], req: Request) -> Answer:
    """Drive ``app`` as uvicorn does: ``path`` percent-decoded (UTF-8), header names lower-case,
    the body in ``req.chunks`` messages."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": req.method,
        "scheme": "http",
        "path": unquote(req.raw_path),
        "raw_path": req.raw_path.encode("ascii"),
        "root_path": "",
        "query_string": req.query.encode("ascii"),
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in req.headers],
        "client": (req.peer, 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    size = -(-len(req.body) // req.chunks) or 1
    parts = [req.body[i : i + size] for i in range(0, len(req.body), size)] or [b""]
    incoming: list[Message] = [
        {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
        for i, part in enumerate(parts)
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert sent, "no answer at all"
    start = sent[0]
    assert start["type"] == "http.response.start"
    assert not sent[-1].get("more_body", False)
    pairs = [(bytes(k).decode("latin-1"), bytes(v).decode("latin-1")) for k, v in start["headers"]]
    return _answer(start["status"], pairs, b"".join(m.get("body", b"") for m in sent[1:]))


def wsgi_call(app: WSGIApplication, req: Request) -> Answer:
    """Drive ``app`` (under ``wsgiref.validate``) with the environ gunicorn builds."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": req.method,
        "SCRIPT_NAME": "",
        # PEP 3333: PATH_INFO is the percent-decoded bytes as latin-1 text.
        "PATH_INFO": unquote_to_bytes(req.raw_path).decode("latin-1"),
        "QUERY_STRING": req.query,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": req.peer,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(req.body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,  # gunicorn: the input stream ends with the body
    }
    for name, value in req.headers:
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    seen: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen.append((status, headers))
        return lambda data: None

    # wsgiref.validate refuses a CONTENT_LENGTH that is not a number, as a server would: such a
    # request never reaches a WSGI app, but the middleware must still answer it sanely.
    length = environ.get("CONTENT_LENGTH", "0")
    validate = length.isascii() and length.isdigit()
    result = (validator(app) if validate else app)(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    status, headers = seen[-1]
    return _answer(int(status.split()[0]), headers, body)


async def wrapped_asgi(scope: Scope, receive: Receive, send: Send) -> None:
    """The wrapped app: reads the whole body and answers with its digest."""
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    digest = f"{scope['method']} {sha(body)}".encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(WRAPPED.encode(), b"1")]}
    )
    await send({"type": "http.response.body", "body": digest})


def wrapped_wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """The wrapped app, WSGI: reads the input to its end (gunicorn terminates it)."""
    chunks = []
    while chunk := environ["wsgi.input"].read(65536):
        chunks.append(chunk)
    start_response("200 OK", [(WRAPPED, "1"), ("Content-Type", "text/plain")])
    return [f"{environ['REQUEST_METHOD']} {sha(b''.join(chunks))}".encode()]


# --- both middlewares over one Redis --------------------------------------------------------------


@dataclass
class Rig:
    """Both middlewares over the session Redis, under one key prefix; an admin client to look."""

    prefix: str
    settings: Settings
    admin: redis.Redis
    store: ClientStore
    astore: AsyncClientStore
    asgi: DCRMiddleware
    wsgi: DCRWSGIMiddleware
    loop: asyncio.Runner
    peers: Iterator[int] = field(default_factory=itertools.count)

    def call(self, side: str, req: Request) -> Answer:
        if side == "asgi":
            return self.loop.run(asgi_call(self.asgi, req))
        return wsgi_call(self.wsgi, req)

    def snapshot(self, *, skip_rate: bool = False) -> dict[bytes, bytes]:
        """Every key under the prefix with its ``DUMP`` (type, value and all).

        The last-use marks (``:used:``) are included: a refused request must not note a use
        (a wrong token or secret must not keep a client alive). With ``skip_rate`` the
        rate-limit buckets are left out.
        """
        keys = sorted(self.admin.keys(f"{self.prefix}:*"))
        if skip_rate:
            keys = [k for k in keys if b":rate:" not in k]
        pipe = self.admin.pipeline(transaction=False)
        for key in keys:
            pipe.dump(key)
        return dict(zip(keys, pipe.execute(), strict=True))

    def reset(self) -> None:
        """Start an example from an empty prefix (keeps the snapshots small and cheap)."""
        keys = self.admin.keys(f"{self.prefix}:*")
        if keys:
            self.admin.delete(*keys)

    def fresh_peer(self) -> str:
        """A client address no earlier request of this test used (own rate-limit bucket)."""
        n = next(self.peers)
        return f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


@pytest.fixture
def make_rig(redis_server: RedisServer) -> Iterator[Callable[..., Rig]]:
    """Build rigs (``make_rig(**settings)``), each under a prefix of its own; closed at the end."""
    rigs: list[Rig] = []

    def _make(**overrides: Any) -> Rig:
        prefix = f"p{uuid.uuid4().hex[:16]}"
        config = Settings(
            redis_url=redis_server.url,
            key_prefix=prefix,
            max_body_bytes=MAX_BODY,
            # The throttles of failed credentials and of management writes are off here (their
            # charges and 429s are covered by tests/*/test_exposure_defaults.py): examples share
            # a peer, and the per-process memory of a refusal outlives reset().
            **{
                "rate_limit": "off",
                "failure_rate_limit": "off",
                "management_rate_limit": "off",
                **overrides,
            },
        )
        loop = asyncio.Runner()
        store, astore = ClientStore(config), AsyncClientStore(config)
        rig = Rig(
            prefix=prefix,
            settings=config,
            admin=redis.Redis.from_url(redis_server.url, socket_timeout=10),
            store=store,
            astore=astore,
            asgi=DCRMiddleware(wrapped_asgi, config, store=astore),
            wsgi=DCRWSGIMiddleware(wrapped_wsgi, config, store=store),
            loop=loop,
        )
        rigs.append(rig)
        return rig

    try:
        yield _make
    finally:
        for rig in rigs:
            rig.loop.run(rig.astore.close())
            rig.loop.close()
            rig.store.close()
            rig.admin.delete(*rig.admin.keys(f"{rig.prefix}:*") or [f"{rig.prefix}:none"])
            rig.admin.close()


@pytest.fixture
def rig(make_rig: Callable[..., Rig]) -> Rig:
    """One rig for all the examples of a test (rate limits off)."""
    return make_rig()


# --- the checks -----------------------------------------------------------------------------------


def check_answer(answer: Answer, allowed: frozenset[int], method: str = "POST") -> None:
    """A middleware answer: documented status; JSON error object with the status's RFC code."""
    assert answer.status in allowed, f"undocumented status {answer.status}: {answer.body!r}"
    # Every answer of the middleware, bodyless ones included (a 204 to DELETE, RFC 7592 §2.3;
    # HEAD), is kept out of caches: it carries or concerns credentials. Except a granted CORS
    # preflight: RFC 9110 §9.3.7 "Responses to the OPTIONS method are not cacheable", and the
    # browser's preflight cache follows Access-Control-Max-Age.
    preflight = (
        method == "OPTIONS"
        and answer.status == 204
        and "access-control-allow-origin" in answer.headers
    )
    if not preflight:
        assert answer.headers.get("cache-control") == "no-store"
    if method == "HEAD" or answer.status == 204:  # no body: servers send none to HEAD
        assert answer.body == b""
        return
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert isinstance(body, dict)
    if answer.status < 400:
        return
    assert body["error"] in ERRORS_BY_STATUS[answer.status], body
    assert set(body) <= {"error", "error_description"}, body
    description = body.get("error_description")
    if description is not None:
        assert isinstance(description, str)
        assert set(description) <= DESCRIPTION_CHARS, description
    if answer.status == 401:
        assert answer.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    if answer.status == 405:
        assert answer.headers["allow"] == "GET, PUT, DELETE"
    if answer.status == 429:
        assert int(answer.headers["retry-after"]) >= 1
        assert "ratelimit" in answer.headers and "ratelimit-policy" in answer.headers


def check_parity(asgi: Answer, wsgi: Answer) -> None:
    """Same status, same error code, same pass-through decision."""
    assert (asgi.status, asgi.passed_through) == (wsgi.status, wsgi.passed_through), (asgi, wsgi)
    if not asgi.passed_through and 400 <= asgi.status < 500 and asgi.body:
        assert asgi.error() == wsgi.error(), (asgi, wsgi)


def check_no_echo(answer: Answer, req: Request, secrets: Iterable[str]) -> None:
    """No secret the request carried is in an error (unless the request also sent it elsewhere,
    in a field an error may quote)."""
    if answer.status < 400:
        return
    text = answer.body.decode("utf-8", "replace")
    sent = "\n".join(req.values())
    for secret in secrets:
        # A secret the request did not send at all must not show up either.
        if len(secret) >= 8 and sent.count(secret) <= 1:
            assert secret not in text, f"secret echoed in {text}"


def registered_metadata(body: dict[str, Any]) -> dict[str, Any]:
    """The metadata part of a 201 / client information body."""
    return {k: v for k, v in body.items() if k not in SERVER_SET}


def check_created(
    rig: Rig, before: dict[bytes, bytes], after: dict[bytes, bytes], answer: Answer
) -> dict[str, Any]:
    """A 201 stored one complete client and nothing else."""
    body = answer.json()
    key = client_key(rig.prefix, body["client_id"]).encode()
    assert set(after) == {*before, key} and key not in before
    assert all(after[k] == v for k, v in before.items())
    stored = rig.store.get(body["client_id"])
    assert stored is not None
    assert stored.metadata == registered_metadata(body)
    assert stored.client_id_issued_at == body["client_id_issued_at"]
    assert stored.registration_token_hash == sha(body["registration_access_token"])
    assert body["registration_client_uri"].endswith(f"{P}/{body['client_id']}")
    if "client_secret" in body:
        assert rig.store.authenticate(body["client_id"], body["client_secret"]) is not None
    return body


def _path_client(req: Request) -> str:
    return unquote(req.raw_path)[len(P) + 1 :]


def _unchanged_but(before: dict[bytes, bytes], after: dict[bytes, bytes], key: bytes) -> None:
    # The client's keys: its record and its last-use mark (same hash tag, noted on a 2xx).
    mine = {key, key.replace(b":client:", b":used:", 1)}
    assert {k: v for k, v in before.items() if k not in mine} == {
        k: v for k, v in after.items() if k not in mine
    }, "a key other than the client's changed"


def check_storage(
    rig: Rig, req: Request, answer: Answer, before: dict[bytes, bytes], after: dict[bytes, bytes]
) -> None:
    """What Redis holds after ``answer``: a refusal (or a read) changed nothing; a 201 added one
    complete client; an update or delete touched only the client of the path."""
    if answer.status == 201:
        check_created(rig, before, after, answer)
        return
    if answer.status in (200, 204) and req.method in ("GET", "PUT", "DELETE"):
        client_id = _path_client(req)
        key = client_key(rig.prefix, client_id).encode()
        assert key in before, "a 2xx for a client that was not stored"
        _unchanged_but(before, after, key)
        stored = rig.store.get(client_id)
        if req.method == "DELETE":
            assert answer.status == 204 and key not in after and stored is None
            return
        assert answer.status == 200 and stored is not None
        body = answer.json()
        assert body["client_id"] == client_id
        assert stored.metadata == registered_metadata(body)
        assert stored.client_id_issued_at == body["client_id_issued_at"]
        assert stored.registration_token_hash == sha(body["registration_access_token"])
        if "client_secret" in body:
            assert rig.store.authenticate(client_id, body["client_secret"]) is not None
        if req.method == "GET":
            assert after[key] == before[key]
            assert f"Bearer {body['registration_access_token']}" in dict(req.headers).values()
        return
    assert after == before, f"a {answer.status} changed Redis"


def send_both(
    rig: Rig,
    req: Request | dict[str, Request],
    allowed: frozenset[int],
    secrets: Iterable[str] = (),
    *,
    skip_rate: bool = False,
) -> tuple[Answer, Answer]:
    """Send the request to each side (``{"asgi": ..., "wsgi": ...}`` when they differ, e.g. in
    the client they name), check each answer and Redis around it; then ASGI against WSGI."""
    reqs = req if isinstance(req, dict) else {"asgi": req, "wsgi": req}
    secrets = list(secrets)
    answers: dict[str, Answer] = {}
    for side, request in reqs.items():
        before = rig.snapshot(skip_rate=skip_rate)
        answer = rig.call(side, request)
        after = rig.snapshot(skip_rate=skip_rate)
        note(f"{side}: {answer.status} {answer.headers} {answer.body[:300]!r}")
        if answer.passed_through:
            # The wrapped app read the very body the server delivered: the middleware left it.
            assert answer.body == f"{request.method} {sha(request.body)}".encode()
            assert after == before, "a passed-through request changed Redis"
        else:
            check_answer(answer, allowed, request.method)
            check_no_echo(answer, request, secrets)
            check_storage(rig, request, answer, before, after)
        answers[side] = answer
    asgi, wsgi = answers["asgi"], answers["wsgi"]
    check_parity(asgi, wsgi)
    if asgi.status == 201 or (asgi.status == 200 and not asgi.passed_through):
        # Same input, same registration: only the generated credentials differ.
        assert registered_metadata(asgi.json()) == registered_metadata(wsgi.json())
    method = reqs["asgi"].method
    outcome = "(app)" if asgi.passed_through else asgi.error() or ""
    event(f"{method} -> {asgi.status} {outcome}")
    return asgi, wsgi


# --- strategies -----------------------------------------------------------------------------------

URLSAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _token(seed: int) -> str:
    digest = hashlib.sha256(seed.to_bytes(9, "big")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


# Secrets and tokens the client sends: 43 URL-safe characters, as real ones are. Drawn as a
# number and hashed, so that Hypothesis cannot build one from text the server writes itself (it
# mines string constants from the code: a "secret" like "error_descri" is in every error).
secrets_ = st.integers(0, 2**64).map(_token)

GOOD_URIS = [
    "https://app.example.com/cb",
    "http://127.0.0.1/cb",
    "http://localhost:3000/cb",
    "http://[::1]:8080/cb",
    "com.example.app:/oauth2redirect",
    "cursor://anysphere.cursor-retrieval/oauth/callback",
]
BAD_URIS = [
    "http://app.example.com/cb",
    "https://app.example.com/cb#top",
    "https://user@app.example.com/cb",
    "javascript:alert(1)",
    "/cb",
    "myapp:",
    "https://bücher.example/cb",
    "",
    "https://",
    "https://[::1/cb",
    "http://127.0.0.1:99999/cb",
    "https://app.example.com/\u0000",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63, max_value=2**200),
    st.floats(),  # NaN and infinities serialize to NaN / Infinity, which JSON does not allow
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=6,
)
uris = st.sampled_from(GOOD_URIS + BAD_URIS) | st.text(max_size=30)
uri_lists = st.lists(uris, max_size=3) | st.lists(
    st.sampled_from(GOOD_URIS), min_size=1, max_size=3
)
GRANTS = ["authorization_code", "refresh_token", "client_credentials", "implicit", "password", ""]
RESPONSES = ["code", "token", "id_token", "code id_token", "none", ""]
AUTH_METHODS = [
    "client_secret_basic",
    "client_secret_post",
    "client_secret_jwt",
    "private_key_jwt",
    "none",
    "tls_client_auth",
    "",
]
ALGS = ["RS256", "ES256", "PS256", "EdDSA", "HS256", "none", "RSA-OAEP", "RSA-OAEP-256", "x"]
ENCS = ["A128CBC-HS256", "A256GCM", "A128GCM", "x"]
JWKS = [
    {"keys": []},
    {"keys": [{"kty": "RSA", "n": "sXch", "e": "AQAB"}]},
    {"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}]},
    {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]},
    {"keys": [{"kty": "RSA", "n": "sXch", "e": "AQAB", "d": "private"}]},
    {"keys": "no"},
]


def field_values(name: str) -> st.SearchStrategy[Any]:
    """Plausible values for a known field (some valid, some not), or any JSON value."""
    return _field_values(name.split("#", 1)[0])


@functools.cache  # one strategy object per field: building them per draw is slow
def _field_values(base: str) -> st.SearchStrategy[Any]:
    good: st.SearchStrategy[Any]
    if base in ("redirect_uris", "request_uris", "post_logout_redirect_uris"):
        good = uri_lists
    elif base == "grant_types":
        good = st.lists(st.sampled_from(GRANTS), max_size=3)
    elif base == "response_types":
        good = st.lists(st.sampled_from(RESPONSES), max_size=2)
    elif base == "token_endpoint_auth_method":
        good = st.sampled_from(AUTH_METHODS)
    elif base == "scope":
        good = st.lists(
            st.sampled_from(["openid", "profile", "email", 'a"b', "x"]), max_size=3
        ).map(" ".join)
    elif base == "contacts":
        good = st.lists(
            st.sampled_from(["ops@example.com", "mailto:a@b", "x"]) | st.text(max_size=10),
            max_size=3,
        )
    elif base.endswith("_uri"):
        good = uris
    elif base in ("client_name", "software_id", "software_version"):
        good = st.text(max_size=20)
    elif base == "jwks":
        good = st.sampled_from(JWKS)
    elif base == "application_type":
        good = st.sampled_from(["web", "native", "", "other"])
    elif base == "subject_type":
        good = st.sampled_from(["public", "pairwise", "x"])
    elif base.endswith("_alg"):
        good = st.sampled_from(ALGS)
    elif base.endswith("_enc"):
        good = st.sampled_from(ENCS)
    elif base == "default_max_age":
        good = st.integers(-5, 10**6)
    elif base == "require_auth_time":
        good = st.booleans()
    elif base == "default_acr_values":
        good = st.lists(st.text(max_size=8), max_size=3)
    elif base == "software_statement":
        good = st.lists(st.text(alphabet=URLSAFE, max_size=12), min_size=3, max_size=3).map(
            ".".join
        )
    elif base == "client_secret":
        good = secrets_
    else:
        return json_values
    return st.one_of(good, good, json_values)


FIELD_NAMES = sorted(
    {
        *ClientMetadata.REGISTERED_CLAIMS,
        "software_statement",
        "client_id",
        "client_secret",
        "registration_access_token",
    }
)
tagged_names = st.builds(
    "{}#{}".format,
    st.sampled_from(LOCALIZABLE),
    st.sampled_from(["ja-Jpan-JP", "en", "", "x-", "!!", "en-US-x-private-1234"]),
)
field_names = st.sampled_from(FIELD_NAMES) | tagged_names | st.text(max_size=10)
BASES: list[dict[str, Any]] = [
    {},
    {"redirect_uris": ["https://app.example.com/cb"]},
    {"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"},
    {"grant_types": ["client_credentials"]},
    {"redirect_uris": ["https://app.example.com/cb"], "client_name": "Example App"},
]


@st.composite
def metadata(draw: st.DrawFn, max_fields: int = 5) -> dict[str, Any]:
    """A registration-like object: a valid base with up to ``max_fields`` fields set at random."""
    document = dict(draw(st.sampled_from(BASES)))
    for name in draw(st.lists(field_names, max_size=max_fields, unique=True)):
        document[name] = draw(field_values(name))
    return document


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


SPECIAL_BODIES = [
    b"",
    b"{}",
    b"\xef\xbb\xbf{}",
    b"NaN",
    b"[]",
    b'"x"',
    b"1e999",
    b'{"redirect_uris": ["https://app.example.com/cb"], "default_max_age": 1e999}',
    b"[" * 3000 + b"]" * 3000,
    b'{"a":' * 1000 + b"1" + b"}" * 1000,
    b'{"client_name": "a", "client_name": "b"}',
    b'{"sc\\u006fpe": "a", "scope": "b", "redirect_uris": ["https://app.example.com/cb"]}',
    b'{"client_name": "\\ud800", "redirect_uris": ["https://app.example.com/cb"]}',
    b'{"redirect_uris": ["https://app.example.com/cb"], "x": ' + b"9" * 5000 + b"}",
    b'{"redirect_uris": ["https://app.example.com/cb"]}\x00',
    b'{"redirect_uris": ["https://app.example.com/cb"]} {}',
    '{"redirect_uris": ["https://app.example.com/cb"]}'.encode("utf-16"),
    b'{"redirect_uris": ["https://app.example.com/cb"], "client_name": "\xff"}',
    b" " * (MAX_BODY + 1),
]


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a few bytes replaced, inserted or cut off."""
    buffer = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(buffer)))
        how = draw(st.sampled_from(["insert", "replace", "truncate"]))
        if how == "truncate":
            del buffer[at:]
        elif how == "insert" or at == len(buffer):
            buffer[at:at] = draw(st.binary(min_size=1, max_size=3))
        else:
            buffer[at] = draw(st.integers(0, 255))
    return bytes(buffer)


bodies = st.one_of(
    metadata().map(dumps),
    metadata().map(dumps),
    json_values.map(dumps),
    metadata().map(dumps).flatmap(mutated),
    st.binary(max_size=120),
    st.sampled_from(SPECIAL_BODIES),
)

CONTENT_TYPES = [
    "application/json",
    "APPLICATION/JSON",
    "application/json; charset=utf-8",
    "application/json;charset=UTF8",
    'application/json; charset="utf-8"',
    "application/json; charset=latin-1",
    "application/json; foo=bar",
    "application/json;;",
    "application/json; charset",
    "application/jsonx",
    "application/json-patch+json",
    "application/jwt",
    "text/plain",
    "multipart/form-data; boundary=x",
    "",
]
# A header value as h11/gunicorn accept it: latin-1, no control characters, no outer whitespace.
header_text = st.text(
    alphabet=st.characters(codec="latin-1", exclude_categories=("Cc",)), max_size=30
).map(lambda s: s.strip(" \t"))
content_types = st.one_of(
    st.sampled_from(CONTENT_TYPES[:5]),
    st.sampled_from(CONTENT_TYPES[:5]),
    st.sampled_from(CONTENT_TYPES[:5]),
    st.none(),
    st.sampled_from(CONTENT_TYPES),
    header_text,
)
TOKEN_CHARS = "!#$%&'*+-.^`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Names the other strategies own, or that a server frames itself (no duplicates of those).
OWNED = {"content-type", "content-length", "transfer-encoding", "authorization", "host"}
extra_headers = st.dictionaries(
    st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=12).filter(lambda n: n.lower() not in OWNED),
    header_text,
    max_size=3,
).map(lambda d: list({k.lower(): (k, v) for k, v in d.items()}.values()))
cors_headers = st.lists(
    st.sampled_from(
        [
            ("Origin", "https://inspector.example.com"),
            ("Origin", "null"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Method", "PUT"),
            ("Access-Control-Request-Method", "post"),
            ("Access-Control-Request-Headers", "content-type,authorization"),
            ("Access-Control-Request-Headers", "x-custom"),
            ("X-Forwarded-For", "203.0.113.9"),
            ("X-Forwarded-Proto", "https"),
        ]
    ),
    max_size=4,
    unique_by=lambda h: h[0],
)


@st.composite
def authorizations(draw: st.DrawFn) -> tuple[str | None, list[str]]:
    """An ``Authorization`` value (or none) and the secrets in it."""
    secret = draw(secrets_)
    kind = draw(st.sampled_from(["none", "bearer", "bearer", "basic", "junk", "odd-bearer"]))
    if kind == "none":
        return None, []
    if kind == "bearer":
        return f"Bearer {secret}", [secret]
    if kind == "basic":
        return "Basic " + base64.b64encode(f"client:{secret}".encode()).decode(), [secret]
    if kind == "odd-bearer":
        form = draw(
            st.sampled_from(["bearer {}", "Bearer  {}", "Bearer {} x", "Bearer", "Bearer {},"])
        )
        return form.format(secret), [secret]
    return draw(header_text), []


@dataclass(frozen=True)
class Framing:
    """How the body travels: ``Content-Length`` true or lying, chunked, or no framing at all."""

    kind: str
    fraction: float = 1.0  # "short": the declared share of the body
    value: str = ""  # "huge" / "junk": the declared Content-Length

    def apply(self, payload: bytes) -> tuple[list[tuple[str, str]], bytes]:
        """The framing headers and the body the app then gets: a server delivers at most
        ``Content-Length`` bytes (the rest would be the next request), none without framing."""
        if self.kind == "length":
            return [("Content-Length", str(len(payload)))], payload
        if self.kind == "chunked":
            return [("Transfer-Encoding", "chunked")], payload
        if self.kind == "none":
            return [], b""
        if self.kind == "short":
            cut = int(len(payload) * self.fraction)
            return [("Content-Length", str(cut))], payload[:cut]
        return [("Content-Length", self.value)], payload


junk_lengths = st.sampled_from(
    ["-1", "+5", "0x10", "5, 5", "1e3", "\u00b2", "abc", ""]
) | header_text.filter(lambda v: not (v.isascii() and v.isdigit()))
framings = st.one_of(
    st.just(Framing("length")),
    st.just(Framing("length")),
    st.just(Framing("length")),
    st.sampled_from([Framing("chunked"), Framing("none")]),
    st.builds(Framing, st.just("short"), st.floats(0, 1)),
    st.builds(Framing, st.just("huge"), value=st.integers(MAX_BODY + 1, 10**30).map(str)),
    st.builds(Framing, st.just("junk"), value=junk_lengths),
)


def _segment_paths(draw: st.DrawFn) -> str:
    segment = draw(st.text(max_size=12))
    return quote(segment, safe=draw(st.sampled_from(["", "/", ";=@"])))


@st.composite
def paths(draw: st.DrawFn) -> str:
    """The registration path, one segment under it (any text), deeper paths, neighbours."""
    kind = draw(st.sampled_from(["P", "P", "id", "id", "deep", "fixed"]))
    if kind == "P":
        return P
    if kind == "id":
        return f"{P}/{_segment_paths(draw)}"
    if kind == "deep":
        return f"{P}/{_segment_paths(draw)}/{_segment_paths(draw)}"
    return draw(
        st.sampled_from(
            [
                f"{P}/",
                f"{P}//",
                f"{P}/a/b",
                f"{P}/{'A' * 22}",
                f"{P}/{'a' * 129}",
                f"{P}x",
                f"{P}.json",
                "/Register",
                "/",
                "/other",
                f"{P}%2Fabc",
                f"{P}/%2F",
                f"{P}/..",
                f"{P}/%00",
                f"{P};a",
                f"{P}/a;b",
                f"{P}/%E2%82%AC",
                f"{P}/%FF",
            ]
        )
    )


queries = st.one_of(
    st.just(""), st.text(alphabet=st.characters(codec="ascii"), max_size=16).map(quote)
)
METHODS = ["POST", "POST", "POST", "GET", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE"]


@st.composite
def requests(draw: st.DrawFn) -> tuple[Request, list[str]]:
    """Any request near the registration endpoint, and the secrets it carries."""
    frame, body = draw(framings).apply(draw(bodies))
    headers: list[tuple[str, str]] = list(frame)
    content_type = draw(content_types)
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    authorization, secrets = draw(authorizations())
    if authorization is not None:
        headers.append(("Authorization", authorization))
    if draw(st.booleans()):
        headers.append(
            ("Host", draw(st.sampled_from(["auth.example.com", "a:1", "[::1]:8"]) | header_text))
        )
    headers += draw(cors_headers) + draw(extra_headers)
    try:
        sent = json.loads(body)
        if isinstance(sent, dict) and isinstance(sent.get("client_secret"), str):
            secrets.append(sent["client_secret"])
    except (ValueError, RecursionError):  # not JSON: no client_secret member to look for
        pass
    request = Request(
        method=draw(st.sampled_from(METHODS)),
        raw_path=draw(paths()),
        query=draw(queries),
        headers=tuple(draw(st.permutations(headers))),
        body=body,
        chunks=draw(st.integers(1, 3)),
    )
    return request, secrets


JSON_HEADERS = (("Content-Type", "application/json"),)


# --- the properties -------------------------------------------------------------------------------


@examples(1000)
@given(case=requests())
def test_http_any_request_documented_answer_parity_nothing_stored_on_refusal(
    rig: Rig, case: tuple[Request, list[str]]
) -> None:
    """Any request, any path near ``P``: documented answers, ASGI = WSGI, refusals store nothing."""
    rig.reset()
    request, secrets = case
    send_both(rig, request, REGISTRATION | MANAGEMENT, secrets)


@examples(700)
@given(
    document=metadata(max_fields=6),
    content_type=st.sampled_from(CONTENT_TYPES[:5]),
    extra=extra_headers,
)
def test_http_register_metadata_documented_answer_parity_one_complete_client(
    rig: Rig,
    document: dict[str, Any],
    content_type: str,
    extra: list[tuple[str, str]],
) -> None:
    """``POST P`` with metadata-like JSON: 201 stores one complete client, refusals nothing."""
    rig.reset()
    body = dumps(document)
    request = Request(
        "POST",
        P,
        headers=(("Content-Type", content_type), ("Content-Length", str(len(body))), *extra),
        body=body,
    )
    secret = document.get("client_secret")
    asgi, _ = send_both(rig, request, REGISTRATION, [secret] if isinstance(secret, str) else [])
    if asgi.status == 201 and isinstance(secret, str):
        assert asgi.json().get("client_secret") != secret  # never the client's choice


# --- the client configuration endpoint, with real clients -----------------------------------------

# Clients registered before each management example: (registration body, what it is).
CLIENTS = [
    {"redirect_uris": ["https://app.example.com/cb"], "client_name": "Web"},
    {"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"},
    {"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_post"},
]
RFC7592_SERVER_FIELDS = [
    "registration_access_token",
    "registration_client_uri",
    "client_secret_expires_at",
    "client_id_issued_at",
]


@dataclass(frozen=True)
class Plan:
    """A request to ``P/{client_id}`` in terms of two registered clients, ``own`` and ``other``:
    resolved against each side's own pair, so both sides get the same request."""

    method: str
    target: str  # own | other | unknown | a percent-encoded segment
    token: str  # own | other | none | a header value with {secret} | "Bearer <secret>"
    document: dict[str, Any] | None  # a JSON body; its client_id / client_secret below
    client_id: str  # own | other | absent | junk
    client_secret: str  # own | wrong | absent
    raw: bytes  # the body when document is None
    content_type: str | None
    framing: Framing
    secret: str  # a random secret for the "wrong" and random-token cases
    extra: tuple[tuple[str, str], ...]


UNKNOWN_ID = "Zz" * 11  # the shape of a real client id; never registered


def _resolve_id(choice: str, own: dict[str, Any], other: dict[str, Any]) -> str:
    return {"own": own["client_id"], "other": other["client_id"], "unknown": UNKNOWN_ID}[choice]


def resolve(plan: Plan, own: dict[str, Any], other: dict[str, Any]) -> Request:
    """The plan's request for one side's clients."""
    if plan.target in ("own", "other", "unknown"):
        segment = _resolve_id(plan.target, own, other)
    else:
        segment = plan.target
    headers: list[tuple[str, str]] = []
    if plan.token in ("own", "other"):
        chosen = own if plan.token == "own" else other
        headers.append(("Authorization", f"Bearer {chosen['registration_access_token']}"))
    elif plan.token != "none":
        headers.append(("Authorization", plan.token.format(secret=plan.secret)))
    if plan.document is not None:
        document = dict(plan.document)
        if plan.client_id in ("own", "other"):
            document["client_id"] = _resolve_id(plan.client_id, own, other)
        elif plan.client_id == "junk":
            document["client_id"] = plan.secret[::-1]
        if plan.client_secret == "own":
            document["client_secret"] = own.get("client_secret", plan.secret)
        elif plan.client_secret == "wrong":
            document["client_secret"] = plan.secret
        payload = dumps(document)
    else:
        payload = plan.raw
    frame, body = plan.framing.apply(payload)
    if plan.content_type is not None:
        headers.append(("Content-Type", plan.content_type))
    return Request(
        plan.method, f"{P}/{segment}", headers=(*frame, *headers, *plan.extra), body=body
    )


def _mostly(draw: st.DrawFn, usual: Any, others: st.SearchStrategy[Any]) -> Any:
    """``usual`` three times in four, else a draw from ``others``."""
    return usual if draw(st.integers(0, 3)) > 0 else draw(others)


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    """A management request: mostly GET/PUT/DELETE with the client's own token and, for PUT, a
    well-formed update; else wrong tokens, other clients, junk bodies and headers."""
    if draw(st.integers(0, 2)) == 0:
        # A well-formed update (the metadata may still be invalid): the 200 path.
        return Plan(
            method="PUT",
            target="own",
            token="own",
            document=draw(metadata(max_fields=2)),
            client_id="own",
            client_secret=draw(st.sampled_from(["absent", "own"])),
            raw=b"",
            content_type="application/json",
            framing=Framing("length"),
            secret=draw(secrets_),
            extra=(),
        )
    document: dict[str, Any] | None = None
    if draw(st.integers(0, 3)) > 0:
        document = draw(metadata())
        server_field = draw(st.none() | st.sampled_from(RFC7592_SERVER_FIELDS))
        if server_field is not None and draw(st.booleans()):
            document[server_field] = draw(field_values(server_field))
    segment = st.text(max_size=10).map(lambda t: quote(t, safe=""))
    junk_tokens = st.sampled_from(
        ["other", "none", "Bearer {secret}", "Basic {secret}", "Bearer", "bearer {secret}"]
    )
    return Plan(
        method=draw(
            st.sampled_from(["GET", "PUT", "PUT", "PUT", "DELETE", "POST", "PATCH", "HEAD"])
        ),
        target=_mostly(draw, "own", st.sampled_from(["other", "unknown"]) | segment),
        token=_mostly(draw, "own", junk_tokens),
        document=document,
        client_id=_mostly(draw, "own", st.sampled_from(["other", "absent", "junk"])),
        client_secret=draw(st.sampled_from(["absent", "absent", "own", "wrong"])),
        raw=draw(bodies),
        content_type=_mostly(draw, "application/json", content_types),
        framing=_mostly(draw, Framing("length"), framings),
        secret=draw(secrets_),
        extra=tuple(draw(extra_headers)),
    )


def register(rig: Rig, side: str, document: dict[str, Any]) -> dict[str, Any]:
    """Register a client through ``side``'s middleware; its 201 body."""
    body = dumps(document)
    headers = (("Content-Type", "application/json"), ("Content-Length", str(len(body))))
    answer = rig.call(side, Request("POST", P, headers=headers, body=body))
    assert answer.status == 201, answer
    created: dict[str, Any] = answer.json()
    return created


def credentials(*clients: dict[str, Any]) -> list[str]:
    """Every secret and token of ``clients`` (none may show up in an error)."""
    fields = ("client_secret", "registration_access_token")
    return [c[f] for c in clients for f in fields if f in c]


@examples(450)
@given(plan=plans(), kinds=st.tuples(st.sampled_from(CLIENTS), st.sampled_from(CLIENTS)))
def test_http_client_configuration_endpoint_real_clients(
    rig: Rig, plan: Plan, kinds: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    """``P/{client_id}`` around two real clients per side: documented answers, ASGI = WSGI; a
    2xx only with the token of the client named in the path, touching that client alone; a
    refusal changes nothing; a wrong token is answered exactly as for an unknown client."""
    rig.reset()
    pairs = {side: (register(rig, side, kinds[0]), register(rig, side, kinds[1])) for side in SIDES}
    reqs = {side: resolve(plan, *pairs[side]) for side in SIDES}
    secrets = [plan.secret, *(s for side in SIDES for s in credentials(*pairs[side]))]
    asgi, _ = send_both(rig, reqs, MANAGEMENT, secrets)
    matched = plan.target == plan.token and plan.target in ("own", "other")
    if 200 <= asgi.status < 300 and not asgi.passed_through:
        assert matched, "a 2xx without the token of the client in the path"
    if plan.target in ("own", "other") and not matched:
        # RFC 7592 §3: never tell an unknown client from a wrong token.
        unknown = {side: replace(reqs[side], raw_path=f"{P}/{UNKNOWN_ID}") for side in SIDES}
        for side in SIDES:
            before = rig.snapshot()
            assert rig.call(side, unknown[side]) == rig.call(side, reqs[side])
            assert rig.snapshot() == before


# --- with a rate limit ----------------------------------------------------------------------------

LIMIT = 3


@pytest.fixture
def limited_rig(make_rig: Callable[..., Rig]) -> Rig:
    """A rig whose registrations are limited to ``LIMIT`` per hour and address."""
    return make_rig(rate_limit=f"{LIMIT}/hour")


@st.composite
def registration_requests(draw: st.DrawFn) -> tuple[Request, list[str]]:
    """``POST P``: valid registrations, invalid ones, and ones refused before the rate check."""
    payload = draw(st.sampled_from(CLIENTS).map(dumps) | bodies)
    frame, body = draw(framings).apply(payload)
    headers = list(frame)
    content_type = draw(content_types)
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    authorization, secrets = draw(
        st.just((None, [])) | st.just((None, [])) | st.just((None, [])) | authorizations()
    )
    if authorization is not None:
        headers.append(("Authorization", authorization))
    return Request("POST", P, headers=tuple(headers), body=body), secrets


@examples(200)
@given(steps=st.lists(registration_requests(), min_size=1, max_size=7))
def test_http_register_rate_limited_only_429_added(
    limited_rig: Rig, steps: list[tuple[Request, list[str]]]
) -> None:
    """With ``DCR_RATE_LIMIT=3/hour``: only documented answers and 429; a request is charged
    exactly when its answer carries the RateLimit fields, 429 comes exactly when the address has
    used its 3, and neither side's requests count against the other's address."""
    rig = limited_rig
    rig.reset()
    peers = {side: rig.fresh_peer() for side in SIDES}
    charged = dict.fromkeys(SIDES, 0)
    for request, secrets in steps:
        reqs = {side: replace(request, peer=peers[side]) for side in SIDES}
        answers = dict(
            zip(
                SIDES,
                send_both(rig, reqs, REGISTRATION | {429}, secrets, skip_rate=True),
                strict=True,
            )
        )
        for side, answer in answers.items():
            if answer.status == 429:
                assert charged[side] >= LIMIT, "429 before the limit was used"
            elif "ratelimit-policy" in answer.headers:
                charged[side] += 1
                assert charged[side] <= LIMIT
            else:
                # Not charged: refused before the rate check (docs/http-api.md steps 1 to 4).
                assert answer.status in (400, 401, 413, 415), answer
                assert answer.error() in ("invalid_request", "invalid_token"), answer
