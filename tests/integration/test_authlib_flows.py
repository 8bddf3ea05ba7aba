"""Full OAuth flows against ``examples/flask_authlib_server.py``: a real Authlib authorization
server wrapped by ``DCRWSGIMiddleware``, under gunicorn, storing clients in the session's
``redis-server``.

A client registers over HTTP, then uses what it got: client credentials with each secret method,
authorization code + PKCE ``S256`` as a public client (loopback redirect on any port, RFC 8252
§7.3) and as a confidential one. The refusals come from ``dcr_middleware.integrations.authlib``
reading the store: a deleted client, an expired secret, a grant type, an auth method, a redirect
URI or a scope the client did not register. With ``DCR_CIMD=true``, a client identified by its
Client ID Metadata Document (served over HTTPS from this process) runs the code flow as a public
client.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import os
import secrets
import shlex
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from support import GUNICORN_VERSION, HOST, PUBLIC, Server, free_port, launch, register
from support.https_server import DocumentServer, Route, loopback_socket_works

from dcr_middleware import ClientStore, Settings

pytestmark = [pytest.mark.redis, pytest.mark.server]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "flask_authlib_server.py"
COMMAND = "gunicorn --workers 1 --chdir examples flask_authlib_server:app"
METADATA_PATH = "/.well-known/oauth-authorization-server"
CONFIDENTIAL_CODE = {
    "redirect_uris": ["https://app.example.com/cb"],
    "grant_types": ["authorization_code"],
}
MACHINE = {"grant_types": ["client_credentials"], "scope": "read write"}
EXPIRY_WAIT = 3.0  # the longest wait for a 1-second secret to expire


def start_example(directory: Path, redis_url: str, env: Mapping[str, str]) -> Server:
    """The example, started by its docstring's command from the repository root."""
    port = free_port()
    tool, *args = shlex.split(COMMAND)
    argv = [sys.executable, "-m", tool, *args, "--bind", f"{HOST}:{port}"]
    argv += ["--graceful-timeout", "5", "--timeout", "60"]
    # gunicorn >= 27 opens a control socket in ~/.gunicorn, shared by every instance.
    argv += ["--no-control-socket"] if GUNICORN_VERSION >= (27,) else []
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DCR_")}
    for name in ("PYTHONPATH", "WEB_CONCURRENCY"):
        environ.pop(name, None)
    environ |= {"PYTHONUNBUFFERED": "1", "DCR_REDIS_URL": redis_url, "DCR_RATE_LIMIT": "off"}
    environ |= env
    return launch("flask-authlib", argv, port=port, directory=directory, env=environ, cwd=ROOT)


@pytest.fixture(scope="module")
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:16]}"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str, prefix: str
) -> Iterator[Server]:
    """One server for the module (codes and tokens live in its single worker)."""
    started = start_example(
        tmp_path_factory.mktemp("authlib"), redis_url, {"DCR_KEY_PREFIX": prefix}
    )
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def registered(http: httpx.Client, body: Mapping[str, Any]) -> dict[str, Any]:
    answer = register(http, body)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def basic(client_id: str, secret: str) -> dict[str, str]:
    pair = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def client_credentials(
    http: httpx.Client, client: Mapping[str, Any], method: str, **form: str
) -> httpx.Response:
    """A client credentials token request authenticated with ``method``."""
    data = {"grant_type": "client_credentials", **form}
    if method == "client_secret_basic":
        return http.post("/token", data=data, headers=basic(client["client_id"], client["secret"]))
    data |= {"client_id": client["client_id"], "client_secret": client["secret"]}
    return http.post("/token", data=data)


def pkce() -> tuple[str, str]:
    """A code verifier and its RFC 7636 §4.2 ``S256`` challenge."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize(http: httpx.Client, client_id: str, **params: str) -> httpx.Response:
    query = {"response_type": "code", "client_id": client_id, "state": "st-1", **params}
    return http.get("/authorize", params=query)


def code_from(answer: httpx.Response, redirect_uri: str) -> str:
    """The code of an authorization answer redirecting to ``redirect_uri``."""
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.split("?")[0] == redirect_uri
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["st-1"]
    assert "error" not in query, query
    return query["code"][0]


def redirect_error(answer: httpx.Response) -> str:
    """The ``error`` of an authorization answer redirecting back to the client."""
    assert answer.status_code == 302, answer.text
    return parse_qs(urlsplit(answer.headers["location"]).query)["error"][0]


def exchange(http: httpx.Client, code: str, redirect_uri: str, **form: str) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    return http.post("/token", data=data | form)


def refused(answer: httpx.Response, status: int, error: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == error, answer.text
    assert "access_token" not in answer.json()


def token_works(http: httpx.Client, token: Mapping[str, Any], client_id: str) -> dict[str, Any]:
    """The bearer token is accepted by the protected resource, for ``client_id``."""
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] > 0
    answer = http.get("/api/me", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert answer.status_code == 200, answer.text
    me: dict[str, Any] = answer.json()
    assert me["client_id"] == client_id
    return me


def machine_client(http: httpx.Client, method: str, **extra: Any) -> dict[str, Any]:
    created = registered(http, {**MACHINE, "token_endpoint_auth_method": method, **extra})
    return created | {"secret": created["client_secret"]}


# --- the example and its metadata ---


def test_example_command_is_in_its_docstring() -> None:
    doc = ast.get_docstring(ast.parse(EXAMPLE.read_text()))
    assert doc is not None
    lines = [line.strip() for line in doc.splitlines()]
    assert COMMAND in lines
    assert "export DCR_REDIS_URL=redis://localhost:6379/0" in lines


def test_metadata_advertises_registration_and_the_flows_served(
    http: httpx.Client, server: Server
) -> None:
    answer = http.get(METADATA_PATH)
    assert answer.status_code == 200, answer.text
    metadata = answer.json()
    assert metadata["issuer"] == server.url
    assert metadata["registration_endpoint"] == server.url + "/register"
    assert metadata["authorization_endpoint"] == server.url + "/authorize"
    assert metadata["token_endpoint"] == server.url + "/token"
    assert metadata["grant_types_supported"] == ["authorization_code", "client_credentials"]
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
        "none",
    ]


# --- (a) client credentials, both secret methods ---


@pytest.mark.parametrize(
    ("method", "other"),
    [
        ("client_secret_basic", "client_secret_post"),
        ("client_secret_post", "client_secret_basic"),
    ],
)
def test_client_credentials_with_the_registered_secret_method(
    http: httpx.Client, method: str, other: str
) -> None:
    client = machine_client(http, method)
    answer = client_credentials(http, client, method)
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    me = token_works(http, answer.json(), client["client_id"])
    assert me["user"] is None

    # Only the method it registered: the same credentials another way are refused.
    refused(client_credentials(http, client, other), 401, "invalid_client")
    wrong = client | {"secret": client["secret"] + "x"}
    refused(client_credentials(http, wrong, method), 401, "invalid_client")


def test_client_credentials_scope_within_the_registered_scope(http: httpx.Client) -> None:
    client = machine_client(http, "client_secret_basic")
    answer = client_credentials(http, client, "client_secret_basic", scope="read")
    assert answer.status_code == 200, answer.text
    assert answer.json()["scope"] == "read"
    assert token_works(http, answer.json(), client["client_id"])["scope"] == "read"

    refused(
        client_credentials(http, client, "client_secret_basic", scope="read admin"),
        400,
        "invalid_scope",
    )


# --- (b) authorization code + PKCE ---


def test_public_client_authorization_code_with_pkce(http: httpx.Client) -> None:
    client = registered(http, PUBLIC)
    client_id, redirect_uri = client["client_id"], PUBLIC["redirect_uris"][0]
    assert "client_secret" not in client

    verifier, challenge = pkce()
    pkce_params = {"code_challenge": challenge, "code_challenge_method": "S256"}
    code = code_from(
        authorize(http, client_id, redirect_uri=redirect_uri, **pkce_params), redirect_uri
    )
    other_verifier, _ = pkce()
    answer = exchange(http, code, redirect_uri, client_id=client_id, code_verifier=other_verifier)
    refused(answer, 400, "invalid_grant")
    # A code is consumed by the first request that presents it, even a refused one.
    answer = exchange(http, code, redirect_uri, client_id=client_id, code_verifier=verifier)
    refused(answer, 400, "invalid_grant")

    code = code_from(
        authorize(http, client_id, redirect_uri=redirect_uri, **pkce_params), redirect_uri
    )
    refused(exchange(http, code, redirect_uri, client_id=client_id), 400, "invalid_request")
    code = code_from(
        authorize(http, client_id, redirect_uri=redirect_uri, **pkce_params), redirect_uri
    )
    answer = exchange(http, code, redirect_uri, client_id=client_id, code_verifier=verifier)
    assert answer.status_code == 200, answer.text
    assert token_works(http, answer.json(), client_id)["user"] == "demo-user"

    answer = exchange(http, code, redirect_uri, client_id=client_id, code_verifier=verifier)
    refused(answer, 400, "invalid_grant")  # used once already


def test_public_client_must_use_pkce_s256(http: httpx.Client) -> None:
    client = registered(http, PUBLIC)
    client_id, redirect_uri = client["client_id"], PUBLIC["redirect_uris"][0]
    verifier, challenge = pkce()

    # The redirect URI is the client's: errors go back to it (RFC 6749 §4.1.2.1).
    assert redirect_error(authorize(http, client_id, redirect_uri=redirect_uri)) == (
        "invalid_request"
    )
    plain = {"code_challenge": verifier, "code_challenge_method": "plain"}
    assert redirect_error(authorize(http, client_id, redirect_uri=redirect_uri, **plain)) == (
        "invalid_request"
    )
    implied_plain = {"code_challenge": challenge}  # RFC 7636 §4.3: no method means plain
    answer = authorize(http, client_id, redirect_uri=redirect_uri, **implied_plain)
    assert redirect_error(answer) == "invalid_request"


def test_native_client_loopback_redirect_on_any_port(http: httpx.Client) -> None:
    client = registered(http, PUBLIC)  # registered http://127.0.0.1/cb, no port
    client_id = client["client_id"]
    verifier, challenge = pkce()
    pkce_params = {"code_challenge": challenge, "code_challenge_method": "S256"}
    redirect_uri = f"http://127.0.0.1:{free_port()}/cb"  # RFC 8252 §7.3

    code = code_from(
        authorize(http, client_id, redirect_uri=redirect_uri, **pkce_params), redirect_uri
    )
    # The token request must name the redirect URI of the authorization request, port included.
    registered_uri = PUBLIC["redirect_uris"][0]
    answer = exchange(http, code, registered_uri, client_id=client_id, code_verifier=verifier)
    refused(answer, 400, "invalid_grant")

    code = code_from(
        authorize(http, client_id, redirect_uri=redirect_uri, **pkce_params), redirect_uri
    )
    answer = exchange(http, code, redirect_uri, client_id=client_id, code_verifier=verifier)
    assert answer.status_code == 200, answer.text
    token_works(http, answer.json(), client_id)


@pytest.mark.parametrize(
    "redirect_uri",
    [
        pytest.param("https://evil.example/cb", id="other-host"),
        pytest.param("http://127.0.0.1:8123/other", id="loopback-other-path"),
        pytest.param("http://localhost/cb", id="loopback-other-host"),
        pytest.param("https://127.0.0.1/cb", id="loopback-https"),
    ],
)
def test_authorize_refuses_an_unregistered_redirect_uri(
    http: httpx.Client, redirect_uri: str
) -> None:
    client = registered(http, PUBLIC)
    _, challenge = pkce()
    answer = authorize(
        http,
        client["client_id"],
        redirect_uri=redirect_uri,
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    # Never redirected to an unregistered URI: answered here (RFC 6749 §4.1.2.1).
    assert "location" not in answer.headers
    refused(answer, 400, "invalid_request")


def test_confidential_client_authorization_code_must_authenticate(http: httpx.Client) -> None:
    client = registered(http, CONFIDENTIAL_CODE)
    client_id, redirect_uri = client["client_id"], CONFIDENTIAL_CODE["redirect_uris"][0]
    verifier, challenge = pkce()
    pkce_params = {"code_challenge": challenge, "code_challenge_method": "S256"}

    # Without its secret (as if it were public) it is refused; that consumed the code.
    code = code_from(
        authorize(http, client_id, redirect_uri=redirect_uri, **pkce_params), redirect_uri
    )
    answer = exchange(http, code, redirect_uri, client_id=client_id, code_verifier=verifier)
    refused(answer, 401, "invalid_client")

    code = code_from(
        authorize(http, client_id, redirect_uri=redirect_uri, **pkce_params), redirect_uri
    )
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    answer = http.post("/token", data=data, headers=basic(client_id, client["client_secret"]))
    assert answer.status_code == 200, answer.text
    assert token_works(http, answer.json(), client_id)["user"] == "demo-user"


# --- (c) deleted, (d) expired, (e) grant type not registered ---


def test_deleted_client_is_refused_and_its_tokens_stop_working(http: httpx.Client) -> None:
    client = machine_client(http, "client_secret_basic")
    answer = client_credentials(http, client, "client_secret_basic")
    assert answer.status_code == 200, answer.text
    token = answer.json()
    token_works(http, token, client["client_id"])

    management = {"Authorization": f"Bearer {client['registration_access_token']}"}
    deleted = http.delete(client["registration_client_uri"], headers=management)
    assert deleted.status_code == 204, deleted.text

    answer = client_credentials(http, client, "client_secret_basic")
    refused(answer, 401, "invalid_client")
    assert answer.headers["www-authenticate"].startswith("Basic")
    refused(client_credentials(http, client, "client_secret_post"), 400, "invalid_client")
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    me = http.get("/api/me", headers=bearer)
    assert me.status_code == 401, me.text
    assert me.json()["error"] == "invalid_token"


def test_client_with_an_expired_secret_is_refused(
    tmp_path: Path, redis_url: str, prefix: str
) -> None:
    env = {"DCR_KEY_PREFIX": prefix, "DCR_CLIENT_SECRET_TTL": "1"}
    server = start_example(tmp_path, redis_url, env)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            client = machine_client(http, "client_secret_basic")
            expires_at = client["client_secret_expires_at"]
            assert expires_at == client["client_id_issued_at"] + 1
            deadline = time.monotonic() + EXPIRY_WAIT
            while time.time() < expires_at + 0.2 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert time.time() >= expires_at, "the secret did not expire in time"

            refused(client_credentials(http, client, "client_secret_basic"), 401, "invalid_client")
    finally:
        server.stop()

    # Refused for its expiry alone: it is still stored, and the secret was the right one.
    store = ClientStore(Settings(redis_url=redis_url, key_prefix=prefix))
    try:
        stored = store.get(client["client_id"])
        assert stored is not None
        assert stored.secret_expired()
        assert stored.check_secret(client["secret"], now=expires_at - 1)
    finally:
        store.close()


def test_grant_type_the_client_did_not_register_is_refused(http: httpx.Client) -> None:
    client = registered(http, CONFIDENTIAL_CODE)  # grant_types ["authorization_code"] only
    assert client["grant_types"] == ["authorization_code"]
    answer = client_credentials(
        http, client | {"secret": client["client_secret"]}, "client_secret_basic"
    )
    refused(answer, 400, "unauthorized_client")


def test_unknown_client_is_refused(http: httpx.Client) -> None:
    ghost = {"client_id": "no-such-client", "secret": "x" * 43}
    refused(client_credentials(http, ghost, "client_secret_basic"), 401, "invalid_client")
    _, challenge = pkce()
    answer = authorize(
        http,
        "no-such-client",
        redirect_uri=PUBLIC["redirect_uris"][0],
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    assert "location" not in answer.headers
    refused(answer, 400, "invalid_client")


# --- (f) a client identified by its Client ID Metadata Document (DCR_CIMD) ---

DOCUMENT_HOST = "127.0.0.2"


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocumentServer]:
    """An HTTPS document server in this process, its certificate for ``127.0.0.2``."""
    if not loopback_socket_works(DOCUMENT_HOST):
        pytest.skip(f"{DOCUMENT_HOST} cannot be bound on this machine")
    server = DocumentServer(tmp_path_factory.mktemp("cimd-ca"), DOCUMENT_HOST, (DOCUMENT_HOST,))
    try:
        yield server
    finally:
        server.close()


def test_document_client_authorization_code_with_pkce(
    tmp_path: Path, redis_url: str, prefix: str, documents: DocumentServer
) -> None:
    client_id = documents.url(DOCUMENT_HOST, "/authlib-client.json")
    mismatch = documents.url(DOCUMENT_HOST, "/mismatch.json")
    body = {
        "client_id": client_id,
        "client_name": "A document client",
        "redirect_uris": PUBLIC["redirect_uris"],
        "grant_types": ["authorization_code"],
    }  # no token_endpoint_auth_method: none, a public client
    documents.routes["/authlib-client.json"] = Route(body=json.dumps(body).encode())
    documents.routes["/mismatch.json"] = Route(body=json.dumps(body).encode())
    env = {
        "DCR_KEY_PREFIX": prefix,
        "DCR_CIMD": "true",
        "DCR_CIMD_PRIVATE_NETWORKS": "127.0.0.0/8",
        "SSL_CERT_FILE": str(documents.ca_file),
    }
    server = start_example(tmp_path, redis_url, env)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            metadata = http.get(METADATA_PATH).json()
            assert metadata["client_id_metadata_document_supported"] is True

            # Authorization code + PKCE S256, a loopback redirect on any port (RFC 8252 §7.3).
            verifier, challenge = pkce()
            pkce_params = {"code_challenge": challenge, "code_challenge_method": "S256"}
            redirect_uri = f"http://127.0.0.1:{free_port()}/cb"
            answer = authorize(http, client_id, redirect_uri=redirect_uri, **pkce_params)
            code = code_from(answer, redirect_uri)
            answer = exchange(http, code, redirect_uri, client_id=client_id, code_verifier=verifier)
            assert answer.status_code == 200, answer.text
            assert token_works(http, answer.json(), client_id)["user"] == "demo-user"

            # A public client: a secret sent in its name is refused.
            code = code_from(
                authorize(http, client_id, redirect_uri=redirect_uri, **pkce_params), redirect_uri
            )
            data = {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            }
            answer = http.post("/token", data=data, headers=basic(client_id, "s" * 43))
            refused(answer, 401, "invalid_client")
            # Client credentials: not for a public client (nor listed in its document).
            form = {"grant_type": "client_credentials", "client_id": client_id}
            refused(http.post("/token", data=form), 401, "invalid_client")

            # A document whose client_id is not its URL: no such client, at both endpoints.
            answer = authorize(http, mismatch, redirect_uri=redirect_uri, **pkce_params)
            assert "location" not in answer.headers
            refused(answer, 400, "invalid_client")
            answer = exchange(http, "x", redirect_uri, client_id=mismatch, code_verifier=verifier)
            refused(answer, 400, "invalid_client")  # Authlib: an unknown id in the form is 400

        # Each document fetched once: every later lookup (the token endpoint, /api/me, the
        # refusals) read the cache in Redis.
        assert documents.paths() == ["/authlib-client.json", "/mismatch.json"]
        assert " 500 " not in server.output()
        assert "Traceback" not in server.output()
    finally:
        server.stop()
