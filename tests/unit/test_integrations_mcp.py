"""The MCP SDK integration's pieces, over the embedded store (no server, no Redis).

The whole flow with the SDK's own client, under uvicorn and against Redis, is in
tests/integration/test_mcp_interop.py; here each piece is checked on its own: the client the SDK
sees, the token endpoint's client authentication, the metadata from ``Settings``, the routes.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from mcp.client.auth.utils import should_use_client_metadata_url
from mcp.server.auth.middleware.client_auth import AuthenticationError
from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    RefreshToken,
    TokenError,
)
from mcp.shared.auth import (
    InvalidRedirectUriError,
    InvalidScopeError,
    OAuthClientInformationFull,
    OAuthToken,
)
from pydantic import AnyUrl
from starlette.applications import Starlette
from starlette.requests import Request

from dcr_middleware import AsyncClientStore, RegisteredClient, Settings
from dcr_middleware.core.credentials import hash_secret
from dcr_middleware.core.errors import StorageError
from dcr_middleware.core.ops import Op
from dcr_middleware.integrations import mcp as integration
from dcr_middleware.integrations.mcp import (
    ClientStoreProvider,
    StoreClientAuthenticator,
    StoredClient,
    auth_routes,
    oauth_metadata,
    registered_client,
)
from dcr_middleware.integrations.mcp._token import basic_credentials
from dcr_middleware.storage.memory import AsyncMemoryBackend, MemoryBackend

pytestmark = pytest.mark.anyio

ISSUER = "http://127.0.0.1:8000"
SECRET = "s3cret-value"
REDIRECT = "http://127.0.0.1/callback"


class Provider(ClientStoreProvider[AuthorizationCode, RefreshToken, AccessToken]):
    """The least a subclass implements: one code, one token, in memory."""

    def __init__(self, store: AsyncClientStore, **kwargs: Any) -> None:
        super().__init__(store, **kwargs)
        self.codes: dict[str, AuthorizationCode] = {}

    async def authorize(
        self, client: OAuthClientInformationFull, params: AuthorizationParams
    ) -> str:
        self.require_code_flow(client)
        self.codes["code"] = AuthorizationCode(
            code="code",
            scopes=params.scopes or [],
            expires_at=2e9,
            client_id=client.client_id,
            code_challenge=params.code_challenge,
            redirect_uri=params.redirect_uri,
            redirect_uri_provided_explicitly=params.redirect_uri_provided_explicitly,
        )
        return self.code_redirect(params, "code")

    async def load_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: str
    ) -> AuthorizationCode | None:
        return self.codes.get(authorization_code)

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: AuthorizationCode
    ) -> OAuthToken:
        return OAuthToken(access_token="access-" + client.client_id)

    async def load_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: str
    ) -> RefreshToken | None:
        return None

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: RefreshToken, scopes: list[str]
    ) -> OAuthToken:
        raise TokenError("invalid_grant")

    async def load_access_token(self, token: str) -> AccessToken | None:
        return None

    async def revoke_token(self, token: AccessToken | RefreshToken) -> None:
        return None


def client(
    client_id: str = "client-1",
    method: str = "client_secret_basic",
    **metadata: Any,
) -> RegisteredClient:
    return RegisteredClient(
        client_id=client_id,
        client_id_issued_at=1_700_000_000,
        metadata={
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": method,
            "client_name": "Test client",
            **metadata,
        },
        client_secret_hash=None if method == "none" else hash_secret(SECRET),
        registration_token_hash=hash_secret("registration-token"),
    )


def memory_store(settings: Settings | None = None) -> AsyncClientStore:
    return AsyncClientStore(settings or Settings(), backend=AsyncMemoryBackend(MemoryBackend()))


async def store_with(*clients: RegisteredClient) -> AsyncClientStore:
    store = memory_store()
    for each in clients:
        await store.create(each)
    return store


# --- the client the SDK sees ----------------------------------------------------------------------


def test_stored_client_from_registered_carries_no_secret() -> None:
    registered = client(scope="tools", client_secret_expires_at=0)
    stored = StoredClient.from_registered(registered)

    assert stored.client_id == "client-1"
    assert stored.client_id_issued_at == 1_700_000_000
    assert [str(uri) for uri in stored.redirect_uris or []] == [REDIRECT]
    assert stored.grant_types == ["authorization_code", "refresh_token"]
    assert stored.response_types == ["code"]
    assert stored.token_endpoint_auth_method == "client_secret_basic"
    assert stored.scope == "tools"
    assert stored.client_name == "Test client"
    assert stored.client_secret is None
    dumped = stored.model_dump_json()
    assert registered.client_secret_hash is not None
    assert registered.client_secret_hash not in dumped and "registration" not in dumped
    assert stored.registered is registered
    assert registered_client(stored) is registered


def test_registered_client_refuses_a_client_not_from_the_store() -> None:
    with pytest.raises(TypeError):
        registered_client(OAuthClientInformationFull(client_id="x"))


def test_stored_client_redirect_uri_any_loopback_port_but_nothing_else() -> None:
    stored = StoredClient.from_registered(client())
    wanted = AnyUrl("http://127.0.0.1:53111/callback")  # RFC 8252 §7.3
    assert stored.validate_redirect_uri(wanted) == wanted
    assert str(stored.validate_redirect_uri(None)) == REDIRECT  # the only one
    with pytest.raises(InvalidRedirectUriError):
        stored.validate_redirect_uri(AnyUrl("http://127.0.0.1:53111/other"))


def test_stored_client_redirect_uri_required_when_several_registered() -> None:
    stored = StoredClient.from_registered(
        client(redirect_uris=[REDIRECT, "https://app.example/cb"])
    )
    with pytest.raises(InvalidRedirectUriError):
        stored.validate_redirect_uri(None)


@pytest.mark.parametrize(
    ("registered", "requested", "expected"),
    [
        pytest.param("tools read", "tools", ["tools"], id="within"),
        pytest.param("tools", "tools admin", None, id="beyond"),
        pytest.param(None, "anything at all", ["anything", "at", "all"], id="none-registered"),
        pytest.param("tools", None, [], id="not-requested"),
    ],
)
def test_stored_client_scope(
    registered: str | None, requested: str | None, expected: list[str] | None
) -> None:
    stored = StoredClient.from_registered(client(**({"scope": registered} if registered else {})))
    if expected is None:
        with pytest.raises(InvalidScopeError):
            stored.validate_scope(requested)
    else:
        assert (stored.validate_scope(requested) or []) == expected


# --- the provider's client half -------------------------------------------------------------------


async def test_provider_get_client_reads_the_store_each_time() -> None:
    store = await store_with(client())
    provider = Provider(store, issuer=ISSUER)
    found = await provider.get_client("client-1")
    assert isinstance(found, StoredClient) and found.client_id == "client-1"
    loaded = await store.load("client-1")
    assert loaded is not None
    await store.replace("client-1", loaded[1], None)  # deleted: unknown at once
    assert await provider.get_client("client-1") is None
    assert await provider.get_client("no-such-client") is None


async def test_provider_get_client_hands_any_client_id_to_the_store_unchanged() -> None:
    asked: list[str] = []

    class Recording(AsyncClientStore):
        async def get(self, client_id: str) -> RegisteredClient | None:
            asked.append(client_id)
            return None

    store = Recording(Settings(), backend=AsyncMemoryBackend(MemoryBackend()))
    url = "https://app.example/client.json"  # a metadata document URL: the store decides
    assert await Provider(store, issuer=ISSUER).get_client(url) is None
    assert asked == [url]


async def test_provider_register_client_is_never_used() -> None:
    provider = Provider(memory_store(), issuer=ISSUER)
    with pytest.raises(NotImplementedError):
        await provider.register_client(OAuthClientInformationFull(client_id="x"))


def test_provider_issuer_defaults_to_the_settings_and_is_required() -> None:
    assert Provider(memory_store(Settings(issuer=ISSUER))).issuer == ISSUER
    with pytest.raises(ValueError, match="no issuer"):
        Provider(memory_store())


def test_provider_leaves_authorize_and_tokens_to_the_operator() -> None:
    with pytest.raises(TypeError, match="abstract"):
        ClientStoreProvider(memory_store(), issuer=ISSUER)  # type: ignore[abstract]


def test_provider_require_code_flow_refuses_a_client_without_it() -> None:
    provider = Provider(memory_store(), issuer=ISSUER)
    machine = client(grant_types=["client_credentials"], response_types=[], redirect_uris=[])
    with pytest.raises(AuthorizeError) as refused:
        provider.require_code_flow(StoredClient.from_registered(machine))
    assert refused.value.error == "unauthorized_client"
    assert provider.require_code_flow(StoredClient.from_registered(client())).client_id


def test_provider_code_redirect_sends_state_and_issuer() -> None:
    provider = Provider(memory_store(), issuer=ISSUER)
    params = AuthorizationParams(
        state="xyz",
        scopes=None,
        code_challenge="c" * 43,
        redirect_uri=AnyUrl(REDIRECT + "?keep=1"),
        redirect_uri_provided_explicitly=True,
    )
    location = provider.code_redirect(params, "the-code")
    assert location.startswith(REDIRECT + "?")
    query = parse_qs(urlsplit(location).query)
    assert query == {"keep": ["1"], "code": ["the-code"], "state": ["xyz"], "iss": [ISSUER]}


# --- the token endpoint's client authentication ---------------------------------------------------


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def token_request(form: dict[str, str], authorization: str | None = None) -> Request:
    body = urlencode(form).encode()
    headers = [(b"content-type", b"application/x-www-form-urlencoded")]
    if authorization is not None:
        headers.append((b"authorization", authorization.encode()))
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/token", "headers": headers}
    return Request(scope, receive)


CLIENTS = [
    client("basic-client", "client_secret_basic"),
    client("post-client", "client_secret_post"),
    client("public-client", "none"),
    client("jwt-client", "private_key_jwt"),
]


@pytest.mark.parametrize(
    ("form", "authorization", "accepted"),
    [
        pytest.param({}, basic("basic-client", SECRET), "basic-client", id="basic-right-secret"),
        pytest.param(
            {"client_id": "post-client", "client_secret": SECRET}, None, "post-client",
            id="post-right-secret",
        ),
        pytest.param({"client_id": "public-client"}, None, "public-client", id="public-no-secret"),
        pytest.param({}, basic("basic-client", SECRET + "x"), None, id="basic-wrong-secret"),
        pytest.param(
            {"client_id": "post-client", "client_secret": "nope"}, None, None,
            id="post-wrong-secret",
        ),
        pytest.param(
            {"client_id": "basic-client", "client_secret": SECRET}, None, None,
            id="right-secret-wrong-method",
        ),
        pytest.param({}, basic("post-client", SECRET), None, id="post-client-over-basic"),
        pytest.param({"client_id": "basic-client"}, None, None, id="confidential-no-secret"),
        pytest.param({"client_id": "jwt-client"}, None, None, id="private-key-jwt-unsupported"),
        pytest.param({}, basic("public-client", "anything"), None, id="public-with-secret"),
        pytest.param({"client_id": "no-such-client"}, None, None, id="unknown-no-secret"),
        pytest.param({}, basic("no-such-client", SECRET), None, id="unknown-with-secret"),
        pytest.param({}, None, None, id="no-client-id"),
        pytest.param(
            {"client_secret": SECRET}, basic("basic-client", SECRET), None, id="two-methods"
        ),
        pytest.param(
            {"client_id": "post-client"}, basic("basic-client", SECRET), None,
            id="basic-and-form-ids-differ",
        ),
        pytest.param({}, "Basic not-base64!", None, id="malformed-basic"),
    ],
)  # fmt: skip
async def test_authenticator(
    form: dict[str, str], authorization: str | None, accepted: str | None
) -> None:
    authenticator = StoreClientAuthenticator(Provider(await store_with(*CLIENTS), issuer=ISSUER))
    request = token_request(form, authorization)
    if accepted is None:
        with pytest.raises(AuthenticationError):
            await authenticator.authenticate_request(request)
    else:
        found = await authenticator.authenticate_request(request)
        assert isinstance(found, StoredClient) and found.client_id == accepted
        assert found.client_secret is None


async def test_authenticator_says_the_same_for_unknown_and_wrong_secret() -> None:
    authenticator = StoreClientAuthenticator(Provider(await store_with(*CLIENTS), issuer=ISSUER))
    messages = []
    for client_id in ("basic-client", "no-such-client"):
        with pytest.raises(AuthenticationError) as refused:
            await authenticator.authenticate_request(token_request({}, basic(client_id, "x")))
        messages.append(refused.value.message)
    assert messages[0] == messages[1]


def test_basic_credentials_are_form_decoded() -> None:
    header = basic("a%3Ab", "p%40ss%2B")  # RFC 6749 §2.3.1: form-urlencoded first
    assert basic_credentials(header) == ("a:b", "p@ss+")
    assert basic_credentials(None) is None
    assert basic_credentials("Bearer abc") is None
    with pytest.raises(AuthenticationError):
        basic_credentials("Basic " + base64.b64encode(b"no-colon").decode())


# --- the metadata from Settings -------------------------------------------------------------------


def test_oauth_metadata_from_default_settings() -> None:
    metadata = oauth_metadata(Settings(), issuer=ISSUER)
    document = metadata.model_dump(mode="json", exclude_none=True)
    assert document == {
        "issuer": ISSUER,  # no trailing slash: issuers compare as exact strings
        "authorization_endpoint": ISSUER + "/authorize",
        "token_endpoint": ISSUER + "/token",
        "registration_endpoint": ISSUER + "/register",
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
    }


def test_oauth_metadata_follows_the_settings() -> None:
    settings = Settings(
        issuer="https://as.example/tenant",
        path="/oauth/clients",
        allowed_auth_methods=("client_secret_post", "private_key_jwt"),
        allowed_grant_types=("authorization_code", "client_credentials"),
        allowed_scopes=("tools", "openid"),
        token_endpoint="https://as.example/tenant/oauth/token",
    )
    metadata = oauth_metadata(settings)
    assert str(metadata.issuer) == "https://as.example/tenant"
    assert str(metadata.registration_endpoint) == "https://as.example/tenant/oauth/clients"
    assert str(metadata.authorization_endpoint) == "https://as.example/tenant/authorize"
    assert str(metadata.token_endpoint) == "https://as.example/tenant/oauth/token"
    # Only what the SDK's handlers and the store authenticator serve.
    assert metadata.token_endpoint_auth_methods_supported == ["client_secret_post"]
    assert metadata.token_endpoint_auth_signing_alg_values_supported is None
    assert metadata.grant_types_supported == ["authorization_code"]
    assert metadata.scopes_supported == ["tools", "openid"]


def test_oauth_metadata_fields_replace_or_remove() -> None:
    metadata = oauth_metadata(
        Settings(allowed_scopes=("tools", "admin")),
        issuer=ISSUER,
        scopes_supported=["tools"],
        authorization_response_iss_parameter_supported=None,
        service_documentation="https://docs.example/",
    )
    assert metadata.scopes_supported == ["tools"]
    assert metadata.authorization_response_iss_parameter_supported is None
    assert str(metadata.service_documentation) == "https://docs.example/"


@pytest.mark.parametrize("cimd", [True, False])
def test_oauth_metadata_says_client_id_metadata_documents_when_cimd_is_on(cimd: bool) -> None:
    metadata = oauth_metadata(Settings(cimd=cimd), issuer=ISSUER)
    document = metadata.model_dump(mode="json", exclude_none=True)
    assert document.get("client_id_metadata_document_supported") is (True if cimd else None)
    # What the SDK's client reads to use its client_metadata_url instead of registering.
    url = "https://app.example/mcp-client.json"
    assert should_use_client_metadata_url(metadata, url) is cimd


def test_oauth_metadata_needs_an_issuer() -> None:
    with pytest.raises(ValueError, match="no issuer"):
        oauth_metadata(Settings())


# --- the routes -----------------------------------------------------------------------------------


def app_for(store: AsyncClientStore) -> Starlette:
    provider = Provider(store, issuer=ISSUER)
    return Starlette(routes=auth_routes(provider, oauth_metadata(store.settings, issuer=ISSUER)))


async def test_auth_routes_serve_metadata_authorize_and_token_but_not_register() -> None:
    app = app_for(await store_with(client()))
    verifier = "v" * 43
    digest = hashlib.sha256(verifier.encode()).digest()
    challenge = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=ISSUER) as http:
        metadata = await http.get("/.well-known/oauth-authorization-server")
        assert metadata.status_code == 200
        assert metadata.json()["registration_endpoint"] == ISSUER + "/register"
        assert (await http.post("/register", json={})).status_code == 404

        authorized = await http.get(
            "/authorize",
            params={
                "response_type": "code",
                "client_id": "client-1",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "state": "s",
            },
        )
        assert authorized.status_code == 302, authorized.text
        query = parse_qs(urlsplit(authorized.headers["location"]).query)
        assert query["iss"] == [ISSUER] and query["state"] == ["s"]

        # HTTP Basic without client_id in the form (RFC 6749 §4.1.3), as Authlib sends it.
        token = await http.post(
            "/token",
            data={"grant_type": "authorization_code", "code": query["code"][0],
                  "code_verifier": verifier},
            headers={"Authorization": basic("client-1", SECRET)},
        )  # fmt: skip
        assert token.status_code == 200, token.text
        assert token.json()["access_token"] == "access-client-1"

        refused = await http.post(
            "/token",
            data={"grant_type": "authorization_code", "code": "code", "code_verifier": verifier},
            headers={"Authorization": basic("client-1", "wrong")},
        )
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"


class DownBackend(AsyncMemoryBackend):
    """An embedded store whose service is down: every operation fails as Redis away would."""

    async def run(self, op: Op[Any]) -> Any:
        raise StorageError("the client store is unavailable; try again later")


async def test_auth_routes_answer_503_when_the_store_is_down() -> None:
    store = AsyncClientStore(Settings(), backend=DownBackend(MemoryBackend()))
    app = app_for(store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=ISSUER) as http:
        token = await http.post(
            "/token",
            data={"grant_type": "authorization_code", "code": "c", "code_verifier": "v" * 43},
            headers={"Authorization": basic("client-1", SECRET)},
        )
        authorize = await http.get(
            "/authorize",
            params={"response_type": "code", "client_id": "client-1", "code_challenge": "c" * 43},
        )
    for answer in (token, authorize):
        assert answer.status_code == 503
        assert answer.json()["error"] == "temporarily_unavailable"
        assert answer.headers["retry-after"] == "1"


# --- the optional dependency ----------------------------------------------------------------------


def test_integration_without_the_sdk_names_the_extra() -> None:
    code = """
import sys
sys.modules["mcp"] = None  # as if the extra were not installed
try:
    import dcr_middleware.integrations.mcp
except ImportError as exc:
    print(exc)
else:
    raise SystemExit("no error")
"""
    result = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "needs the MCP Python SDK" in result.stdout
    assert "pip install 'mcp>=2.3'" in result.stdout and "pip install '.[mcp]'" in result.stdout


def test_integration_exports() -> None:
    assert sorted(integration.__all__) == [
        "ClientStoreProvider",
        "StoreClientAuthenticator",
        "StoredClient",
        "TokenEndpoint",
        "auth_routes",
        "mount_auth_routes",
        "oauth_metadata",
        "registered_client",
    ]
