"""The WSGI request head read straight from the environ is what ``webob.Request`` gives: its
headers (lower-cased), method, remote address, scheme and host."""

from __future__ import annotations

import warnings
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dcr_middleware.core.admission import RequestHead
from dcr_middleware.wsgi import _head

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "'cgi' is deprecated", DeprecationWarning)
    import webob


def webob_head(environ: dict[str, Any]) -> RequestHead:
    """The head as the middleware built it with WebOb."""
    request = webob.Request(environ)
    return RequestHead(
        method=request.method,
        headers={name.lower(): value for name, value in request.headers.items()},
        peer=request.remote_addr,
        scheme=request.scheme,
        host=request.host,
    )


NAMES = st.sampled_from(
    [
        "HTTP_HOST",
        "HTTP_CONTENT_TYPE",
        "HTTP_CONTENT_LENGTH",
        "HTTP_X_FORWARDED_FOR",
        "HTTP_AUTHORIZATION",
        "HTTP_ORIGIN",
        "HTTP_ACCESS_CONTROL_REQUEST_METHOD",
        "CONTENT_TYPE",
        "CONTENT_LENGTH",
        "REMOTE_ADDR",
        "REQUEST_METHOD",
        "QUERY_STRING",
        "HTTP_",
        "HTTP_X__Y",
        "HTTP_1X",
    ]
) | st.from_regex(r"\AHTTP_[A-Z0-9_]{1,12}\Z")
VALUES = st.sampled_from(["", "application/json", "as.example:8443", "10.0.0.1, 10.0.0.2", "POST"])


@settings(max_examples=300, deadline=None, database=None)
@given(
    extra=st.dictionaries(NAMES, VALUES, max_size=8),
    scheme=st.sampled_from(["http", "https"]),
)
def test_wsgi_head_is_webobs(extra: dict[str, str], scheme: str) -> None:
    environ: dict[str, Any] = {
        "SERVER_NAME": "as.example",
        "SERVER_PORT": "8000",
        "PATH_INFO": "/register",
        "wsgi.url_scheme": scheme,
        **extra,
    }
    assert _head(environ) == webob_head(environ)
