"""The token endpoint: client authentication against the stored secret digest."""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from mcp.server.auth.handlers.token import TokenHandler
from mcp.server.auth.middleware.client_auth import AuthenticationError, ClientAuthenticator
from mcp.shared.auth import OAuthClientInformationFull
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message

from ...core._http import error_response
from ...core.errors import DCRError
from ._clients import ClientStoreProvider, StoredClient

# The methods StoreClientAuthenticator checks (oauth_metadata advertises no other).
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")


class StoreClientAuthenticator(ClientAuthenticator):
    """Token-endpoint client authentication against the stored secret digest.

    Replaces the SDK's plaintext comparison. RFC 6749 §2.3.1: the client authenticates with
    ``client_secret_basic`` (HTTP Basic) or ``client_secret_post`` (form fields), and must use
    the method it registered; a public client (``none``) sends no secret. A presented secret is
    checked by :meth:`AsyncClientStore.authenticate` (constant time, expiry honoured). The
    answer never says whether an unknown client exists.
    """

    def __init__(self, provider: ClientStoreProvider[Any, Any, Any]) -> None:
        super().__init__(provider)
        self.store = provider.store

    async def authenticate_request(self, request: Request) -> OAuthClientInformationFull:
        """The client the request authenticates, or ``AuthenticationError`` (``401``)."""
        form = await request.form()
        form_id, form_secret = form.get("client_id"), form.get("client_secret")
        basic = basic_credentials(request.headers.get("authorization"))
        if basic is not None:
            if form_secret is not None:
                # RFC 6749 §2.3: the client MUST NOT use more than one authentication method.
                raise AuthenticationError("more than one client authentication method")
            client_id, method = basic[0], "client_secret_basic"
            secret: str | None = basic[1]
            if form_id is not None and form_id != client_id:
                raise AuthenticationError("Client ID mismatch in Basic auth")
        elif isinstance(form_id, str) and form_id:
            client_id, method = form_id, "client_secret_post"
            secret = form_secret if isinstance(form_secret, str) else None
        else:
            raise AuthenticationError("Missing client_id")

        if secret is None:
            registered = await self.store.get(client_id)
            if registered is None or not registered.is_public:
                raise AuthenticationError("Invalid client credentials")
        else:
            registered = await self.store.authenticate(client_id, secret)
            if registered is None or registered.token_endpoint_auth_method != method:
                raise AuthenticationError("Invalid client credentials")
        return StoredClient.from_registered(registered)


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """The client id and secret of an ``Authorization: Basic`` header (``None`` without one)."""
    if header is None or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as error:
        raise AuthenticationError("Invalid Basic authentication header") from error
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise AuthenticationError("Invalid Basic authentication header")
    # RFC 6749 §2.3.1: both are form-urlencoded before going into the Basic header.
    return unquote(client_id), unquote(secret)


class TokenEndpoint:
    """The SDK's ``TokenHandler`` behind :class:`StoreClientAuthenticator`.

    The SDK's token request models require ``client_id`` in the form, but RFC 6749 §4.1.3 asks
    for it only "if the client is not authenticating with the authorization server", and
    conforming clients (Authlib's, for one) leave it out when they send Basic credentials. So
    when the form has none, the client identifier from the Basic header is added before the
    SDK reads the form; the authenticator still checks the credentials. A store that cannot be
    reached is answered ``503`` (``temporarily_unavailable``), as the middleware answers it.
    """

    def __init__(self, provider: ClientStoreProvider[Any, Any, Any]) -> None:
        self.handler = TokenHandler(provider, StoreClientAuthenticator(provider))

    async def handle(self, request: Request) -> Response:
        """Answer one token request (its body already capped by the caller)."""
        body = await request.body()
        try:
            basic = basic_credentials(request.headers.get("authorization"))
        except AuthenticationError:
            basic = None  # the authenticator answers 401 for it
        form = parse_qsl(body.decode("latin-1"), keep_blank_values=True)
        if basic is not None and not any(name == "client_id" for name, _ in form):
            body += b"&client_id=" + quote(basic[0], safe="").encode()

        async def receive() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            response: Response = await self.handler.handle(Request(request.scope, receive))
        except DCRError as error:
            return store_error(error)
        return response


def store_error(error: DCRError) -> Response:
    """The library's JSON answer for one of its errors (a ``StorageError``: ``503``)."""
    answer = error_response(error)
    return Response(answer.body, answer.status, headers=dict(answer.headers))
