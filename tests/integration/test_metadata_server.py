"""``DCR_SERVE_METADATA`` under real servers: uvicorn (ASGI) and gunicorn (WSGI) started as the
README says, the metadata document served over a socket, the wrapped app answering the rest."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from support import APP_BODY, Server

from dcr_middleware import Settings, authorization_server_metadata

pytestmark = pytest.mark.server

WELL_KNOWN = "/.well-known/oauth-authorization-server"
ENV = {
    "DCR_SERVE_METADATA": "true",
    "DCR_ISSUER": "https://auth.example.com",
    "DCR_AUTHORIZATION_ENDPOINT": "https://auth.example.com/authorize",
    "DCR_TOKEN_ENDPOINT": "https://auth.example.com/token",
    "DCR_ALLOWED_SCOPES": "openid,profile",
    "DCR_RATE_LIMIT": "off",
}


@pytest.mark.parametrize("kind", ["uvicorn", "gunicorn"])
def test_metadata_server_serves_the_document_and_passes_the_rest(
    kind: str, serve: Callable[..., Server]
) -> None:
    server = serve(kind, None, env=ENV)
    expected = authorization_server_metadata(Settings.from_env(ENV))
    # One connection for every request: a HEAD answer that leaked body bytes would corrupt the
    # next answer read from it.
    with httpx.Client(base_url=server.url, timeout=10) as client:
        head = client.head(WELL_KNOWN)
        get = client.get(WELL_KNOWN)
        assert get.status_code == 200, get.text
        assert get.json() == expected
        assert get.headers["cache-control"] == "public, max-age=3600"
        assert (head.status_code, head.content) == (200, b"")
        assert head.headers["content-length"] == str(len(get.content))
        assert client.post(WELL_KNOWN, content=b"").status_code == 405
        assert client.get("/").content == APP_BODY
        assert client.get(WELL_KNOWN + "/").content == APP_BODY
