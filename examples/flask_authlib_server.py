"""A Flask + Authlib authorization server whose clients register themselves (RFC 7591).

Run it from the repository root (``pip install flask '.[server]'``)::

    export DCR_REDIS_URL=redis://localhost:6379/0
    gunicorn --workers 1 --chdir examples flask_authlib_server:app

``POST /register`` (and RFC 7592 ``/register/{client_id}``) is answered by the middleware; the
clients it stores are the ones Authlib's ``AuthorizationServer`` sees, through
``dcr_middleware.integrations.authlib.query_client``, read from Redis at every request: a
deleted client, or one whose secret expired (``DCR_CLIENT_SECRET_TTL``), is refused at once.

- ``GET /authorize``: the authorization code grant, PKCE ``S256`` required of public clients.
  DEMO ONLY: there is no login and no consent screen, every request is approved for the fixed
  user ``demo-user``. A real server authenticates the user and asks before issuing a code.
- ``POST /token``: ``authorization_code`` and ``client_credentials``, clients authenticating with
  ``client_secret_basic``, ``client_secret_post`` or (public clients) ``none``.
- ``GET /api/me``: a resource protected by the bearer tokens issued here.
- ``GET /.well-known/oauth-authorization-server``: RFC 8414 metadata, with the
  ``registration_endpoint``.

Codes and tokens live in this process's memory, hence one worker: keep them in your database or
Redis to run several. Authlib refuses plain ``http`` except on loopback: serve over TLS (behind
a proxy, werkzeug's ``ProxyFix`` makes the request URL say ``https``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector, current_token
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6750 import BearerTokenValidator
from flask import Flask, Response, jsonify, request

from dcr_middleware import ClientStore, DCRWSGIMiddleware, Settings, StorageError
from dcr_middleware.integrations import authlib as dcr_authlib

settings = Settings.from_env()  # the DCR_* variables, read once
clients = ClientStore(settings)  # the registered clients, shared by the middleware and Authlib

DEMO_USER = "demo-user"  # every authorization request is approved for this user (no login)
CODE_TTL = 600  # RFC 6749 §4.1.2: "A maximum authorization code lifetime of 10 minutes"
TOKEN_TTL = 3600
GRANTS = ("authorization_code", "client_credentials")

app = Flask(__name__)
app.config["OAUTH2_TOKEN_EXPIRES_IN"] = dict.fromkeys(GRANTS, TOKEN_TTL)
app.wsgi_app = DCRWSGIMiddleware(app.wsgi_app, settings, store=clients)


@dataclass(frozen=True)
class AuthorizationCode:
    """An issued code, with what the token request must match (Authlib reads these names)."""

    client_id: str
    redirect_uri: str | None
    scope: str
    user: str
    code_challenge: str | None
    code_challenge_method: str | None
    expires_at: float

    def get_redirect_uri(self) -> str | None:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass(frozen=True)
class Token:
    """An issued access token (Authlib's ``TokenMixin`` methods)."""

    client_id: str
    scope: str
    user: str | None
    expires_at: float

    def check_client(self, client: Any) -> bool:
        return bool(client.get_client_id() == self.client_id)

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return TOKEN_TTL

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at

    def is_revoked(self) -> bool:
        return False


_lock = threading.Lock()
_codes: dict[str, AuthorizationCode] = {}
_tokens: dict[str, Token] = {}


class AuthorizationCodeGrant(dcr_authlib.AuthorizationCodeGrant):
    """The authorization code grant over the in-memory codes."""

    def save_authorization_code(self, code: str, request: Any) -> None:
        data = request.payload.data
        with _lock:
            _codes[code] = AuthorizationCode(
                client_id=request.client.get_client_id(),
                redirect_uri=request.payload.redirect_uri,
                scope=request.scope or "",
                user=request.user,
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
                expires_at=time.time() + CODE_TTL,
            )

    def query_authorization_code(self, code: str, client: Any) -> AuthorizationCode | None:
        # Taken out on first use, whatever the outcome: a code can never be redeemed twice.
        with _lock:
            item = _codes.pop(code, None)
        if item is None or item.expires_at <= time.time():
            return None
        return item if item.client_id == client.get_client_id() else None

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        pass  # already taken out by query_authorization_code

    def authenticate_user(self, authorization_code: AuthorizationCode) -> str:
        return authorization_code.user


def save_token(token: dict[str, Any], request: Any) -> None:
    """Keep an issued token (and drop the expired ones)."""
    now = time.time()
    with _lock:
        for expired in [k for k, t in _tokens.items() if t.expires_at <= now]:
            del _tokens[expired]
        _tokens[token["access_token"]] = Token(
            client_id=request.client.get_client_id(),
            scope=token.get("scope", ""),
            user=request.user,
            expires_at=now + token["expires_in"],
        )


server = AuthorizationServer(app, dcr_authlib.query_client(clients), save_token)
server.register_grant(AuthorizationCodeGrant, [dcr_authlib.S256CodeChallenge()])
server.register_grant(dcr_authlib.ClientCredentialsGrant)


class TokenValidator(BearerTokenValidator):
    """Tokens issued here, while their client is still registered."""

    def authenticate_token(self, token_string: str) -> Token | None:
        with _lock:
            token = _tokens.get(token_string)
        if token is None or clients.get(token.client_id) is None:
            return None  # a deleted client's tokens stop working with it
        return token


require_token = ResourceProtector()
require_token.register_token_validator(TokenValidator())


@app.get("/")
def home() -> dict[str, str]:
    return {"message": "hello from the Flask + Authlib authorization server"}


@app.get("/authorize")
def authorize() -> Response:
    """DEMO: approves every valid request for ``DEMO_USER``, with no login and no consent."""
    try:
        grant = server.get_consent_grant(end_user=DEMO_USER)
    except OAuth2Error as error:
        return server.handle_error_response(None, error)
    return server.create_authorization_response(grant_user=DEMO_USER, grant=grant)


@app.post("/token")
def issue_token() -> Response:
    return server.create_token_response()


@app.get("/api/me")
@require_token()
def me() -> dict[str, Any]:
    token = current_token
    return {"client_id": token.client_id, "user": token.user, "scope": token.scope}


@app.errorhandler(StorageError)
def storage_unavailable(error: StorageError) -> tuple[Response, int, dict[str, str]]:
    """Redis unreachable: ``503``, as the middleware answers, never a ``500``."""
    return jsonify(error="temporarily_unavailable"), 503, {"Retry-After": "1"}


@app.get("/.well-known/oauth-authorization-server")
def metadata() -> Response:
    """RFC 8414 metadata: what this server serves, within what registration allows."""
    base = (settings.issuer or request.host_url).rstrip("/")  # set DCR_ISSUER in production
    methods = dcr_authlib.TOKEN_ENDPOINT_AUTH_METHODS
    fields: dict[str, Any] = {
        "issuer": base,
        "authorization_endpoint": base + "/authorize",
        "token_endpoint": base + "/token",
        "registration_endpoint": base + settings.path,
        "grant_types_supported": [g for g in GRANTS if g in settings.allowed_grant_types],
        "response_types_supported": ["code"],
        "token_endpoint_auth_methods_supported": [
            m for m in settings.allowed_auth_methods if m in methods
        ],
        "code_challenge_methods_supported": ["S256"],
    }
    if settings.allowed_scopes is not None:
        fields["scopes_supported"] = list(settings.allowed_scopes)
    if settings.cimd:  # DCR_CIMD: query_client also resolves https:// client ids (docs/cimd.md)
        fields["client_id_metadata_document_supported"] = True
    return jsonify(fields)
