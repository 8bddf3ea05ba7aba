"""URI rules: absolute URIs, loopback hosts, redirect URIs and web page URLs."""

from __future__ import annotations

import pytest

from dcr_middleware.core import _uris


@pytest.mark.parametrize(
    ("uri", "scheme", "host"),
    [
        pytest.param("https://a.example/cb?x=1", "https", "a.example", id="https"),
        pytest.param("com.example.app:/cb", "com.example.app", None, id="private-use"),
        pytest.param("http://[::1]:8080/", "http", "::1", id="ipv6"),
        pytest.param("urn:ietf:wg:oauth:2.0:oob", "urn", None, id="urn"),
    ],
)
def test_split_absolute_accepts(uri: str, scheme: str, host: str | None) -> None:
    parts = _uris.split_absolute(uri)
    assert parts is not None
    assert parts.scheme == scheme
    assert parts.hostname == host


@pytest.mark.parametrize(
    "uri",
    [
        pytest.param("", id="empty"),
        pytest.param("/relative", id="relative"),
        pytest.param("a.example/cb", id="no-scheme"),
        pytest.param("https://a.example/#f", id="fragment"),
        pytest.param("https://u@a.example/", id="userinfo"),
        pytest.param("https://a.example:70000/", id="port-out-of-range"),
        pytest.param("https://a.example:x/", id="port-not-number"),
        pytest.param("https://a.example/ x", id="space"),
        pytest.param("https://a.example/\x00", id="nul"),
        pytest.param("https://a.example/\x7f", id="del"),
        pytest.param("https://a.example\\@b.example/", id="backslash"),
        pytest.param("https://[::1/", id="bad-ipv6"),
        pytest.param("1http://a.example/", id="scheme-starts-with-digit"),
        pytest.param("ht_tp://a.example/", id="scheme-underscore"),
    ],
)
def test_split_absolute_rejects(uri: str) -> None:
    assert _uris.split_absolute(uri) is None


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        pytest.param("127.0.0.1", True, id="v4"),
        pytest.param("127.255.255.254", True, id="v4-range"),
        pytest.param("::1", True, id="v6"),
        pytest.param("localhost", True, id="localhost"),
        pytest.param("LocalHost", True, id="localhost-mixed-case"),
        pytest.param("0.0.0.0", False, id="unspecified-v4"),
        pytest.param("::", False, id="unspecified-v6"),
        pytest.param("128.0.0.1", False, id="not-loopback"),
        pytest.param("localhost.example.com", False, id="localhost-prefix"),
        pytest.param("evil-localhost", False, id="localhost-suffix"),
        pytest.param("127.1", False, id="short-form"),
        pytest.param("", False, id="empty"),
        pytest.param(None, False, id="none"),
    ],
)
def test_is_loopback_host(host: str | None, loopback: bool) -> None:
    assert _uris.is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    "uri",
    [
        "https://a.example/cb",
        "http://127.0.0.1:1234/cb",
        "http://[::1]/cb",
        "http://localhost/cb",
        "com.example.app:/cb",
        "com.example.app://cb",
        "cursor://callback",
    ],
)
def test_redirect_uri_problem_none_for_acceptable(uri: str) -> None:
    assert _uris.redirect_uri_problem(uri, allow_insecure=False) is None


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        pytest.param("javascript:alert(1)", "javascript", id="javascript"),
        pytest.param("DATA:text/plain,x", "data", id="data-upper-case"),
        pytest.param("vbscript:x", "vbscript", id="vbscript"),
        pytest.param("file:///etc/passwd", "file", id="file"),
        pytest.param("blob:https://a.example/x", "blob", id="blob"),
        pytest.param("about:blank", "about", id="about"),
        pytest.param("mailto:a@example.com", "mailto", id="mailto"),
        pytest.param("ws://a.example/cb", "ws", id="websocket"),
        pytest.param("ftp://a.example/cb", "ftp", id="ftp"),
        pytest.param("http://a.example/cb", "loopback", id="http-remote"),
        pytest.param("https:/cb", "host", id="https-no-host"),
        pytest.param("com.example.app:", "path", id="private-use-empty"),
        pytest.param("https://a.example/#x", "absolute", id="fragment"),
    ],
)
def test_redirect_uri_problem_says_what_is_wrong(uri: str, says: str) -> None:
    problem = _uris.redirect_uri_problem(uri, allow_insecure=False)
    assert problem is not None
    assert says in problem


def test_redirect_uri_problem_allow_insecure_only_relaxes_http() -> None:
    assert _uris.redirect_uri_problem("http://a.example/cb", allow_insecure=True) is None
    assert _uris.redirect_uri_problem("javascript:x", allow_insecure=True) is not None
    assert _uris.redirect_uri_problem("http:/cb", allow_insecure=True) is not None


@pytest.mark.parametrize(
    ("uri", "https_only", "ok"),
    [
        pytest.param("https://a.example/", False, True, id="https"),
        pytest.param("http://a.example/", False, True, id="http"),
        pytest.param("http://a.example/", True, False, id="http-https-only"),
        pytest.param("https://a.example/", True, True, id="https-https-only"),
        pytest.param("ftp://a.example/", False, False, id="ftp"),
        pytest.param("https:/x", False, False, id="no-host"),
        pytest.param("com.example.app:/x", False, False, id="private-use"),
        pytest.param("https://a.example/#x", False, False, id="fragment"),
    ],
)
def test_web_url_problem(uri: str, https_only: bool, ok: bool) -> None:
    assert (_uris.web_url_problem(uri, https_only=https_only) is None) is ok


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        pytest.param("app.example.com", True, id="exact"),
        pytest.param("APP.example.com.", True, id="exact-case-and-trailing-dot"),
        pytest.param("other.example.com", False, id="exact-only"),
        pytest.param("a.example.org", True, id="wildcard-subdomain"),
        pytest.param("a.b.example.org", True, id="wildcard-deep-subdomain"),
        pytest.param("example.org", False, id="wildcard-not-apex"),
        pytest.param(".example.org", False, id="wildcard-empty-label"),
        # The lookalike: a registrable name that merely ends in the pattern's text.
        pytest.param("evilexample.org", False, id="wildcard-lookalike"),
        pytest.param("a.evilexample.org", False, id="wildcard-lookalike-subdomain"),
        pytest.param("a.example.org.evil.net", False, id="wildcard-suffix-trick"),
    ],
)
def test_host_allowed(host: str, allowed: bool) -> None:
    assert _uris.host_allowed(host, ("app.example.com", "*.example.org")) is allowed
