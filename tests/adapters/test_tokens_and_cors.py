"""Initial access tokens (RFC 7591 §3, RFC 6750 §3) and CORS through both middlewares.

Every test runs on the ASGI side (``httpx.ASGITransport``) and the WSGI side
(``httpx.WSGITransport`` under ``wsgiref.validate``) with the same expectations; each side has its
own embedded store, into which minted tokens are put directly (``token_put``), as the
``dcr-middleware tokens create`` command puts them into Redis. A parity test then checks that
the two sides answer a whole token/CORS sequence with the same statuses, headers and errors.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from dcr_middleware import Settings
from dcr_middleware.core.tokens import TokenPolicy

from .harness import (
    Answer,
    ASGISide,
    Receive,
    Scope,
    Send,
    WSGISide,
    asgi_request,
    asgi_side,
    record_count,
    wsgi_request,
    wsgi_side,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

pytestmark = pytest.mark.anyio

SIDES = ("asgi", "wsgi")
TOKEN = "static-Initial-Access-Token_0123456789"
MINTED = "minted-Initial-Access-Token_9876543210abc"
WRONG = "wrong-Initial-Access-Token_000000000000"
CHALLENGE = 'Bearer error="invalid_token"'
BODY = json.dumps({"redirect_uris": ["https://app.example.com/cb"]}).encode()
JSON = {"Content-Type": "application/json"}
ORIGIN = "https://inspector.example.com"
EXPOSED = {"ratelimit", "ratelimit-policy", "retry-after", "www-authenticate"}
WRAPPED_BODY = b"answered by the wrapped app"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def body(**fields: Any) -> bytes:
    """A registration request: one valid redirect URI plus ``fields``."""
    return json.dumps({"redirect_uris": ["https://app.example.com/cb"], **fields}).encode()


def bearer(token: str) -> dict[str, str]:
    return {**JSON, "Authorization": f"Bearer {token}"}


# --- the wrapped apps (for requests that must pass through) ------------------------------------


async def wrapped_asgi(scope: Scope, receive: Receive, send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"x-wrapped", b"1")],
        }
    )
    await send({"type": "http.response.body", "body": WRAPPED_BODY})


def wrapped_wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    start_response(
        "200 OK",
        [
            ("Content-Type", "text/plain"),
            ("X-Wrapped", "1"),
            ("Content-Length", str(len(WRAPPED_BODY))),
        ],
    )
    return [WRAPPED_BODY]


# --- one endpoint, either side -----------------------------------------------------------------


class Endpoint:
    """One middleware (ASGI or WSGI) with its own embedded store."""

    def __init__(self, kind: str, settings: Settings, *, wrapped: bool = False) -> None:
        self.kind = kind
        self.side: ASGISide | WSGISide
        if kind == "asgi":
            self.side = asgi_side(settings, app=wrapped_asgi) if wrapped else asgi_side(settings)
        else:
            self.side = wsgi_side(settings, app=wrapped_wsgi) if wrapped else wsgi_side(settings)
        self.backend = self.side.backend

    async def send(
        self,
        method: str = "POST",
        path: str = "/register",
        *,
        content: bytes | None = BODY,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        headers = JSON if headers is None else headers
        if isinstance(self.side, ASGISide):
            return await asgi_request(self.side.app, method, path, content=content, headers=headers)
        return wsgi_request(self.side.app, method, path, content=content, headers=headers)

    async def register(self, token: str | None = None, **kwargs: Any) -> Answer:
        headers = JSON if token is None else bearer(token)
        return await self.send(headers={**headers, **kwargs.pop("headers", {})}, **kwargs)

    def mint(
        self,
        token: str = MINTED,
        uses: int = 1,
        expires_at: int = 0,
        policy: TokenPolicy | None = None,
    ) -> None:
        """Put a minted token into the store, as ``dcr-middleware tokens create`` does."""
        fields = {
            "uses": str(uses),
            "policy": (policy or TokenPolicy()).to_json(),
            "label": "test",
            "created": str(int(time.time())),
            "expires": str(expires_at),
        }
        self.backend.token_put(sha(token), fields, expires_at)

    def uses_left(self, token: str = MINTED) -> str | None:
        fields = self.backend.token_get(sha(token))
        return None if fields is None else fields["uses"]

    @property
    def clients(self) -> int:
        return record_count(self.backend)


def assert_invalid_token(answer: Answer, *sent: str) -> None:
    """A proper RFC 6750 §3 refusal, which repeats none of the tokens sent."""
    assert answer.status == 401, answer.body
    assert answer.headers["www-authenticate"] == CHALLENGE
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["cache-control"] == "no-store"
    error = answer.json()
    assert set(error) == {"error", "error_description"}
    assert error["error"] == "invalid_token"
    shown = answer.body.decode() + json.dumps(answer.headers)
    for token in sent:
        assert token not in shown
        assert sha(token) not in shown
        assert sha(token)[:16] not in shown


def assert_created(answer: Answer) -> dict[str, Any]:
    assert answer.status == 201, answer.body
    assert "www-authenticate" not in answer.headers
    created: dict[str, Any] = answer.json()
    assert created["client_id"]
    return created


# --- static tokens ---------------------------------------------------------------------------

STATIC = Settings(initial_access_tokens=(TOKEN,))
STATIC_SHA = Settings(initial_access_tokens=(f"sha256:{sha(TOKEN)}",))
STATIC_SHA_UPPER = Settings(initial_access_tokens=(f"sha256:{sha(TOKEN).upper()}", WRONG[::-1]))


@pytest.mark.parametrize("kind", SIDES)
@pytest.mark.parametrize(
    "settings",
    [
        pytest.param(STATIC, id="plaintext"),
        pytest.param(STATIC_SHA, id="sha256"),
        pytest.param(STATIC_SHA_UPPER, id="sha256-upper"),
    ],
)
@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="no-header"),
        pytest.param(f"Bearer {WRONG}", id="wrong-token"),
        pytest.param(f"Bearer {TOKEN[:-1]}", id="token-prefix"),
        pytest.param(f"Bearer {TOKEN}x", id="token-extended"),
        pytest.param(f"Bearer {sha(TOKEN)}", id="the-digest-itself"),
        pytest.param(f"Bearer sha256:{sha(TOKEN)}", id="the-configured-entry"),
        pytest.param(f"Basic {TOKEN}", id="basic-scheme"),
        pytest.param(f"Token {TOKEN}", id="other-scheme"),
        pytest.param("Bearer", id="scheme-only"),
        pytest.param(f"Bearer {TOKEN} {TOKEN}", id="two-tokens"),
        pytest.param(f"Bearer {TOKEN}!", id="bad-character"),
        pytest.param("", id="empty-header"),
    ],
)
async def test_static_token_refused(
    kind: str, settings: Settings, authorization: str | None
) -> None:
    endpoint = Endpoint(kind, settings)
    headers = dict(JSON)
    if authorization is not None:
        headers["Authorization"] = authorization
    answer = await endpoint.send(headers=headers)
    assert_invalid_token(answer, TOKEN, WRONG)
    assert endpoint.clients == 0


@pytest.mark.parametrize("kind", SIDES)
@pytest.mark.parametrize(
    "settings",
    [
        pytest.param(STATIC, id="plaintext"),
        pytest.param(STATIC_SHA, id="sha256"),
        pytest.param(STATIC_SHA_UPPER, id="sha256-upper"),
        pytest.param(Settings(initial_access_tokens=(WRONG, TOKEN)), id="second-of-two"),
    ],
)
@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(f"Bearer {TOKEN}", id="bearer"),
        pytest.param(f"bearer {TOKEN}", id="lower-case-scheme"),
        pytest.param(f"BEARER   {TOKEN}", id="upper-case-spaces"),
    ],
)
async def test_static_token_admits(kind: str, settings: Settings, authorization: str) -> None:
    endpoint = Endpoint(kind, settings)
    for _ in range(3):  # a static token never runs out
        answer = await endpoint.send(headers={**JSON, "Authorization": authorization})
        assert_created(answer)
    assert endpoint.clients == 3


@pytest.mark.parametrize("kind", SIDES)
async def test_no_token_needed_and_none_sent(kind: str) -> None:
    endpoint = Endpoint(kind, Settings())
    answer = await endpoint.register()
    assert_created(answer)
    assert answer.headers["ratelimit-policy"].startswith('"ip-')


@pytest.mark.parametrize("kind", SIDES)
@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(f"Bearer {WRONG}", id="unknown"),
        pytest.param("Basic dXNlcjpwYXNz", id="basic"),
    ],
)
async def test_no_token_needed_but_a_bad_one_sent(kind: str, authorization: str) -> None:
    """A token that is sent is checked even where none is required."""
    endpoint = Endpoint(kind, Settings())
    answer = await endpoint.send(headers={**JSON, "Authorization": authorization})
    assert_invalid_token(answer, WRONG)
    assert endpoint.clients == 0


# --- minted tokens -----------------------------------------------------------------------------

REQUIRED = Settings(require_initial_access_token=True)


@pytest.mark.parametrize("kind", SIDES)
async def test_minted_token_required(kind: str) -> None:
    endpoint = Endpoint(kind, REQUIRED)
    endpoint.mint(uses=1)
    assert_invalid_token(await endpoint.register(), MINTED)
    assert_invalid_token(await endpoint.register(WRONG), MINTED, WRONG)
    assert endpoint.uses_left() == "1"
    assert endpoint.clients == 0


@pytest.mark.parametrize("kind", SIDES)
@pytest.mark.parametrize("uses", [1, 2, 3])
async def test_minted_token_admits_until_uses_run_out(kind: str, uses: int) -> None:
    endpoint = Endpoint(kind, REQUIRED)
    endpoint.mint(uses=uses)
    for used in range(uses):
        assert_created(await endpoint.register(MINTED))
        assert endpoint.uses_left() == str(uses - used - 1)
    for _ in range(2):
        assert_invalid_token(await endpoint.register(MINTED), MINTED)
    assert endpoint.uses_left() == "0"
    assert endpoint.clients == uses


@pytest.mark.parametrize("kind", SIDES)
async def test_minted_token_unlimited_uses(kind: str) -> None:
    endpoint = Endpoint(kind, REQUIRED)
    endpoint.mint(uses=-1)
    for _ in range(5):
        assert_created(await endpoint.register(MINTED))
    assert endpoint.uses_left() == "-1"
    assert endpoint.clients == 5


@pytest.mark.parametrize("kind", SIDES)
@pytest.mark.parametrize("ago", [1, 3600])
async def test_minted_token_expired(kind: str, ago: int) -> None:
    endpoint = Endpoint(kind, REQUIRED)
    endpoint.mint(uses=5, expires_at=int(time.time()) - ago)
    assert_invalid_token(await endpoint.register(MINTED), MINTED)
    assert endpoint.clients == 0


@pytest.mark.parametrize("kind", SIDES)
async def test_minted_token_not_yet_expired(kind: str) -> None:
    endpoint = Endpoint(kind, REQUIRED)
    endpoint.mint(uses=5, expires_at=int(time.time()) + 3600)
    assert_created(await endpoint.register(MINTED))
    assert endpoint.uses_left() == "4"


@pytest.mark.parametrize("kind", SIDES)
async def test_minted_token_revoked(kind: str) -> None:
    endpoint = Endpoint(kind, REQUIRED)
    endpoint.mint(uses=5)
    assert_created(await endpoint.register(MINTED))
    assert endpoint.backend.token_delete(sha(MINTED))
    assert_invalid_token(await endpoint.register(MINTED), MINTED)
    assert endpoint.clients == 1


@pytest.mark.parametrize("kind", SIDES)
async def test_minted_token_alongside_static_tokens(kind: str) -> None:
    endpoint = Endpoint(kind, STATIC)
    endpoint.mint(uses=1)
    assert_created(await endpoint.register(MINTED))
    assert_created(await endpoint.register(TOKEN))
    assert_invalid_token(await endpoint.register(MINTED), MINTED, TOKEN)
    assert_created(await endpoint.register(TOKEN))
    assert endpoint.clients == 3


@pytest.mark.parametrize("kind", SIDES)
@pytest.mark.parametrize(
    ("request_body", "content_type", "status"),
    [
        pytest.param(body(redirect_uris=["not a uri"]), "application/json", 400, id="bad-uri"),
        pytest.param(body(grant_types=["password"]), "application/json", 400, id="bad-grant"),
        pytest.param(b"{not json", "application/json", 400, id="not-json"),
        pytest.param(BODY, "text/plain", 415, id="media-type"),
        pytest.param(b"x" * 70_000, "application/json", 413, id="too-large"),
    ],
)
async def test_minted_token_use_not_taken_by_refused_request(
    kind: str, request_body: bytes, content_type: str, status: int
) -> None:
    endpoint = Endpoint(kind, REQUIRED)
    endpoint.mint(uses=1)
    headers = {"Content-Type": content_type, "Authorization": f"Bearer {MINTED}"}
    refused = await endpoint.send(content=request_body, headers=headers)
    assert refused.status == status, refused.body
    assert "www-authenticate" not in refused.headers
    assert endpoint.uses_left() == "1"
    assert endpoint.clients == 0
    assert_created(await endpoint.register(MINTED))
    assert endpoint.uses_left() == "0"
    assert_invalid_token(await endpoint.register(MINTED), MINTED)


@pytest.mark.parametrize("kind", SIDES)
async def test_minted_token_policy_narrows_scopes(kind: str) -> None:
    settings = Settings(require_initial_access_token=True, default_scopes=("read", "write"))
    endpoint = Endpoint(kind, settings)
    endpoint.mint(uses=5, policy=TokenPolicy(allowed_scopes=("read",)))
    refused = await endpoint.register(MINTED, content=body(scope="read write"))
    assert refused.status == 400, refused.body
    assert refused.json()["error"] == "invalid_client_metadata"
    assert "scope" in refused.json()["error_description"]
    assert endpoint.uses_left() == "5"
    narrowed = assert_created(await endpoint.register(MINTED, content=body(scope="read")))
    assert narrowed["scope"] == "read"
    # The defaults are narrowed too: "write" is dropped, not refused.
    assert assert_created(await endpoint.register(MINTED))["scope"] == "read"
    assert endpoint.uses_left() == "3"
    # Without the token's policy the same request is fine (the static token has none).
    other = Endpoint(kind, Settings(initial_access_tokens=(TOKEN,)))
    unnarrowed = assert_created(await other.register(TOKEN, content=body(scope="read write")))
    assert unnarrowed["scope"] == "read write"


@pytest.mark.parametrize("kind", SIDES)
async def test_minted_token_policy_narrows_redirect_hosts(kind: str) -> None:
    endpoint = Endpoint(kind, REQUIRED)
    endpoint.mint(uses=5, policy=TokenPolicy(allowed_redirect_hosts=("app.example.com",)))
    refused = await endpoint.register(
        MINTED, content=body(redirect_uris=["https://evil.example.net/cb"])
    )
    assert refused.status == 400, refused.body
    assert refused.json()["error"] == "invalid_redirect_uri"
    assert endpoint.uses_left() == "5"
    assert_created(await endpoint.register(MINTED))
    assert endpoint.uses_left() == "4"


# --- rate limits with tokens -------------------------------------------------------------------


@pytest.mark.parametrize("kind", SIDES)
async def test_token_rate_limit_applies_instead_of_the_address_limit(kind: str) -> None:
    settings = Settings(rate_limit="1/hour", token_rate_limit="2/hour")
    endpoint = Endpoint(kind, settings)
    endpoint.mint(uses=-1)
    policy = '"token-2/3600";q=2;w=3600'
    first, second, third = [await endpoint.register(MINTED) for _ in range(3)]
    for answer, remaining in ((first, 1), (second, 0)):
        assert_created(answer)
        assert answer.headers["ratelimit-policy"] == policy
        assert answer.headers["ratelimit"].startswith(f'"token-2/3600";r={remaining};t=')
    assert third.status == 429, third.body
    assert third.json()["error"] == "too_many_requests"
    assert "token" in third.json()["error_description"]
    assert third.headers["ratelimit-policy"] == policy
    assert int(third.headers["retry-after"]) >= 1
    for answer in (first, second, third):
        assert MINTED not in json.dumps(answer.headers)
        assert sha(MINTED)[:16] not in json.dumps(answer.headers)
    # The address was never charged: its own limit (1/hour) still has its one request...
    assert_created(tokenless := await endpoint.register())
    assert tokenless.headers["ratelimit-policy"] == '"ip-1/3600";q=1;w=3600'
    assert (await endpoint.register()).status == 429
    assert endpoint.clients == 3
    # ...and the 429 took no use.
    assert endpoint.uses_left() == "-1"


@pytest.mark.parametrize("kind", SIDES)
async def test_token_rate_limit_refusal_takes_no_use(kind: str) -> None:
    endpoint = Endpoint(kind, Settings(token_rate_limit="1/hour"))
    endpoint.mint(uses=3)
    assert_created(await endpoint.register(MINTED))
    limited = await endpoint.register(MINTED)
    assert limited.status == 429
    assert endpoint.uses_left() == "2"


@pytest.mark.parametrize("kind", SIDES)
async def test_static_token_rate_limit(kind: str) -> None:
    endpoint = Endpoint(kind, Settings(initial_access_tokens=(TOKEN,), token_rate_limit="2/hour"))
    answers = [await endpoint.register(TOKEN) for _ in range(3)]
    assert [a.status for a in answers] == [201, 201, 429]
    assert all(a.headers["ratelimit-policy"] == '"token-2/3600";q=2;w=3600' for a in answers)


@pytest.mark.parametrize("kind", SIDES)
async def test_minted_token_own_rate_limit(kind: str) -> None:
    endpoint = Endpoint(kind, Settings(token_rate_limit="60/hour"))
    endpoint.mint(uses=-1, policy=TokenPolicy(rate_limit="1/minute"))
    first, second = [await endpoint.register(MINTED) for _ in range(2)]
    assert_created(first)
    assert first.headers["ratelimit-policy"] == '"token-1/60";q=1;w=60'
    assert second.status == 429


@pytest.mark.parametrize("kind", SIDES)
async def test_tokens_share_no_bucket(kind: str) -> None:
    endpoint = Endpoint(kind, Settings(token_rate_limit="1/hour"))
    endpoint.mint(MINTED, uses=-1)
    endpoint.mint(WRONG, uses=-1)
    assert_created(await endpoint.register(MINTED))
    assert_created(await endpoint.register(WRONG))
    assert (await endpoint.register(MINTED)).status == 429


# --- CORS --------------------------------------------------------------------------------------

LISTED = Settings(cors_origins=(ORIGIN, "http://localhost:6274"))
PREFLIGHT = {
    "Origin": ORIGIN,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type,authorization",
}


def assert_cors(answer: Answer, allow_origin: str) -> None:
    assert answer.headers["access-control-allow-origin"] == allow_origin
    exposed = answer.headers["access-control-expose-headers"]
    assert {h.strip().lower() for h in exposed.split(",")} == EXPOSED
    assert "access-control-allow-credentials" not in answer.headers
    if allow_origin == "*":
        assert "origin" not in answer.headers.get("vary", "").lower()
    else:
        assert answer.headers["vary"] == "Origin"


@pytest.mark.parametrize("kind", SIDES)
@pytest.mark.parametrize(
    ("settings", "allow_origin"),
    [pytest.param(Settings(), "*", id="any"), pytest.param(LISTED, ORIGIN, id="listed")],
)
async def test_cors_preflight_answered(kind: str, settings: Settings, allow_origin: str) -> None:
    endpoint = Endpoint(kind, settings)  # the wrapped app must not be reached
    answer = await endpoint.send("OPTIONS", content=None, headers=PREFLIGHT)
    assert answer.status == 204, answer.body
    assert answer.body == b""
    assert answer.headers["access-control-allow-origin"] == allow_origin
    assert answer.headers["access-control-allow-methods"] == "POST"
    allowed = {h.strip().lower() for h in answer.headers["access-control-allow-headers"].split(",")}
    assert allowed == {"content-type", "authorization"}
    assert answer.headers["access-control-max-age"] == "600"
    assert "access-control-allow-credentials" not in answer.headers
    assert ("vary" in answer.headers) is (allow_origin != "*")
    assert endpoint.clients == 0


@pytest.mark.parametrize("kind", SIDES)
@pytest.mark.parametrize(
    ("settings", "headers"),
    [
        pytest.param(LISTED, {**PREFLIGHT, "Origin": "https://evil.example"}, id="origin"),
        pytest.param(Settings(), {**PREFLIGHT, "Access-Control-Request-Method": "PUT"}, id="put"),
        pytest.param(
            Settings(),
            {**PREFLIGHT, "Access-Control-Request-Headers": "x-api-key"},
            id="header",
        ),
    ],
)
async def test_cors_preflight_refused(
    kind: str, settings: Settings, headers: dict[str, str]
) -> None:
    answer = await Endpoint(kind, settings).send("OPTIONS", content=None, headers=headers)
    assert answer.status == 403, answer.body
    assert answer.json()["error"] == "access_denied"
    assert not any(name.startswith("access-control-") for name in answer.headers)


@pytest.mark.parametrize("kind", SIDES)
@pytest.mark.parametrize(
    ("settings", "path", "headers"),
    [
        pytest.param(Settings(), "/register", {}, id="no-cors-headers"),
        pytest.param(Settings(), "/register", {"Origin": ORIGIN}, id="origin-only"),
        pytest.param(
            Settings(),
            "/register",
            {"Access-Control-Request-Method": "POST"},
            id="request-method-only",
        ),
        pytest.param(Settings(cors_origins=("off",)), "/register", PREFLIGHT, id="cors-off"),
        pytest.param(Settings(), "/other", PREFLIGHT, id="other-path"),
        pytest.param(Settings(), "/register/", PREFLIGHT, id="trailing-slash"),
    ],
)
async def test_cors_options_passes_through(
    kind: str, settings: Settings, path: str, headers: dict[str, str]
) -> None:
    endpoint = Endpoint(kind, settings, wrapped=True)
    answer = await endpoint.send("OPTIONS", path, content=None, headers=headers)
    assert answer.status == 200
    assert answer.body == WRAPPED_BODY
    assert answer.headers["x-wrapped"] == "1"
    assert not any(name.startswith("access-control-") for name in answer.headers)


@pytest.mark.parametrize("kind", SIDES)
@pytest.mark.parametrize(
    ("settings", "allow_origin"),
    [pytest.param(Settings(), "*", id="any"), pytest.param(LISTED, ORIGIN, id="listed")],
)
async def test_cors_fields_on_every_answer(
    kind: str, settings: Settings, allow_origin: str
) -> None:
    settings = Settings(
        cors_origins=settings.cors_origins, rate_limit="2/hour", initial_access_tokens=(TOKEN,)
    )
    endpoint = Endpoint(kind, settings)
    origin = {"Origin": ORIGIN}
    unauthorized = await endpoint.register(headers=origin)
    assert_invalid_token(unauthorized, TOKEN)
    created = await endpoint.register(TOKEN, headers=origin)
    assert_created(created)
    invalid = await endpoint.register(TOKEN, content=body(redirect_uris=["x"]), headers=origin)
    assert invalid.status == 400
    unsupported = await endpoint.send(headers={**bearer(TOKEN), **origin, "Content-Type": "text/x"})
    assert unsupported.status == 415
    # The token's bucket (60/hour) is not the address's: a token-less refused request is 401
    # before the rate limit, so exhaust the token's bucket with its own limit instead.
    limited_endpoint = Endpoint(
        kind,
        Settings(
            cors_origins=settings.cors_origins,
            initial_access_tokens=(TOKEN,),
            token_rate_limit="1/hour",
        ),
    )
    assert_created(await limited_endpoint.register(TOKEN, headers=origin))
    limited = await limited_endpoint.register(TOKEN, headers=origin)
    assert limited.status == 429
    for answer in (unauthorized, created, invalid, unsupported, limited):
        assert_cors(answer, allow_origin)
    # The fields the script needs to read are there to be exposed.
    assert unauthorized.headers["www-authenticate"] == CHALLENGE
    assert "ratelimit" in created.headers
    assert "retry-after" in limited.headers


@pytest.mark.parametrize("kind", SIDES)
async def test_cors_fields_absent(kind: str) -> None:
    for settings, headers in (
        (Settings(), {}),
        (LISTED, {"Origin": "https://evil.example"}),
        (Settings(cors_origins=("off",)), {"Origin": ORIGIN}),
    ):
        answer = await Endpoint(kind, settings).register(headers=headers)
        assert_created(answer)
        assert not any(name.startswith("access-control-") for name in answer.headers)


# --- parity ------------------------------------------------------------------------------------


async def _sequence(kind: str) -> list[Answer]:
    settings = Settings(
        require_initial_access_token=True,
        token_rate_limit="3/hour",
        initial_access_tokens=(TOKEN,),
        cors_origins=(ORIGIN,),
    )
    endpoint = Endpoint(kind, settings)
    endpoint.mint(uses=2, policy=TokenPolicy(allowed_scopes=("read",)))
    origin = {"Origin": ORIGIN}
    return [
        await endpoint.send("OPTIONS", content=None, headers=PREFLIGHT),
        await endpoint.send(
            "OPTIONS", content=None, headers={**PREFLIGHT, "Origin": "https://x.example"}
        ),
        await endpoint.register(headers=origin),
        await endpoint.register(WRONG, headers=origin),
        await endpoint.send(headers={**origin, **JSON, "Authorization": "Basic abc"}),
        await endpoint.register(MINTED, content=body(scope="write"), headers=origin),
        await endpoint.register(MINTED, content=body(scope="read"), headers=origin),
        await endpoint.register(MINTED, headers=origin),
        await endpoint.register(MINTED, headers=origin),
        await endpoint.register(TOKEN, headers=origin),
        await endpoint.register(TOKEN, headers=origin),
        await endpoint.register(TOKEN, headers=origin),
        await endpoint.register(TOKEN, headers=origin),
    ]


def _comparable(answer: Answer) -> tuple[int, dict[str, str], Any]:
    headers = {k: v for k, v in answer.headers.items() if k not in ("content-length", "date")}
    if not answer.body:
        return answer.status, headers, None
    data = answer.json()
    if answer.status == 201:
        data = sorted(k for k in data if not k.startswith(("client_id", "client_secret")))
    return answer.status, headers, data


async def test_tokens_and_cors_asgi_and_wsgi_answer_identically() -> None:
    from_asgi = await _sequence("asgi")
    from_wsgi = await _sequence("wsgi")
    assert [a.status for a in from_asgi] == [
        204,
        403,
        401,
        401,
        401,
        400,
        201,
        201,
        401,
        201,
        201,
        201,
        429,
    ]
    assert [_comparable(a) for a in from_asgi] == [_comparable(a) for a in from_wsgi]


@pytest.mark.anyio
async def test_asgi_repeated_forwarding_headers_are_read_as_one_list() -> None:
    """Two X-Forwarded-For lines count as one comma-joined list (RFC 9110 §5.3): the client is
    the rightmost untrusted hop of all lines together, neither the first nor the last line."""
    settings = Settings(trusted_proxies=("127.0.0.1/32",), rate_limit="5/hour")
    side = asgi_side(settings)
    transport = httpx.ASGITransport(app=side.app)
    headers = [
        ("Content-Type", "application/json"),
        ("X-Forwarded-For", "198.51.100.1"),
        ("X-Forwarded-For", "203.0.113.9"),
        ("X-Forwarded-For", "127.0.0.1"),  # a second trusted proxy's hop
    ]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        body = b'{"redirect_uris":["https://app.example.com/cb"]}'
        answer = await client.post("/register", content=body, headers=headers)
    assert answer.status_code == 201
    assert set(side.backend._buckets) == {"ip:203.0.113.9"}
