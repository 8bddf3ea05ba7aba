"""URI rules for client metadata: redirect URIs (RFC 6749 §3.1.2, RFC 8252) and web page URLs.

Theory of operation: a redirect URI is accepted when it is absolute, has no fragment, no
userinfo, no white space, control or non-ASCII characters (RFC 3986 URIs are ASCII; an IRI
must be sent percent-encoded), and its scheme is one of

* ``https`` with a host;
* ``http`` with a loopback host (``127.0.0.0/8``, ``[::1]``, ``localhost``; RFC 8252 §7.3), or any
  host when the operator allows insecure redirect URIs;
* a private-use scheme of a native app (RFC 8252 §7.1, e.g. ``com.example.app:/cb`` or
  ``cursor://callback``), except schemes that run code or read local files in a browser.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from urllib.parse import SplitResult, urlsplit

# RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*\Z")
# Schemes that run code or read local data in a browser, or that are not app callbacks at all.
_FORBIDDEN_SCHEMES = frozenset(
    {
        "javascript",
        "data",
        "vbscript",
        "file",
        "blob",
        "about",
        "view-source",
        "mailto",
        "tel",
        "sms",
        "ftp",
        "ws",
        "wss",
    }
)
# RFC 3986 §2: a URI is unreserved, reserved and percent-encoded characters only. White space,
# controls, backslash, '"', '<', '>', '^', '`', '{', '|', '}' and anything outside ASCII (lone
# surrogates included) must be sent percent-encoded.
_BAD_CHARS = re.compile(r"[^A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]")


def split_absolute(uri: str) -> SplitResult | None:
    """Split ``uri`` if it is a well-formed absolute URI without fragment, else ``None``."""
    if _BAD_CHARS.search(uri) or "#" in uri:
        return None
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return None
    if not parts.scheme or not _SCHEME.match(parts.scheme) or "@" in parts.netloc:
        return None
    return parts


@functools.lru_cache(maxsize=1024)
def is_loopback_host(host: str | None) -> bool:
    """True for ``localhost`` and loopback IP literals (RFC 8252 §7.3, §8.3); cached, as the
    same hosts come back in every registration."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_allowed(host: str, patterns: tuple[str, ...]) -> bool:
    """Match a host against ``DCR_ALLOWED_REDIRECT_HOSTS`` entries: ``app.example.com`` matches
    itself only, ``*.example.com`` matches any subdomain (not ``example.com`` itself)."""
    host = host.lower().rstrip(".")
    for pattern in patterns:
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern:
            return True
    return False


def redirect_uri_problem(
    uri: str, *, allow_insecure: bool, allowed_hosts: tuple[str, ...] | None = None
) -> str | None:
    """Say what is wrong with a redirect URI, or return ``None`` when it is acceptable.

    ``allowed_hosts`` (``DCR_ALLOWED_REDIRECT_HOSTS``) restricts http(s) hosts, loopback hosts
    excepted (native apps, RFC 8252 §7.3), and private-use schemes to the ones listed as
    ``scheme:``; ``None`` allows any.
    """
    parts = split_absolute(uri)
    if parts is None:
        return "must be an absolute ASCII URI without fragment, userinfo or white space"
    scheme = parts.scheme.lower()
    if scheme in _FORBIDDEN_SCHEMES:
        return f"the {scheme}: scheme is not allowed"
    if scheme in ("http", "https"):
        if not parts.hostname:
            return "must name a host"
        loopback = is_loopback_host(parts.hostname)
        if scheme == "http" and not allow_insecure and not loopback:
            return "plain http is only allowed for loopback hosts (127.0.0.1, [::1], localhost)"
        if (
            allowed_hosts is not None
            and not loopback
            and not host_allowed(parts.hostname, allowed_hosts)
        ):
            return f"host {parts.hostname!r} is not in this server's allowed redirect hosts"
        return None
    # RFC 8252 §7.1: a private-use URI scheme of a native app; it must carry a path or authority.
    if not (parts.netloc or parts.path):
        return "a private-use scheme redirect URI must have a path"
    if allowed_hosts is not None and f"{scheme}:" not in allowed_hosts:
        return f"the {scheme}: scheme is not in this server's allowed redirect hosts"
    return None


def web_url_problem(uri: str, *, https_only: bool = False) -> str | None:
    """Say what is wrong with a web page URL (``client_uri``, ``logo_uri``...), or ``None``."""
    parts = split_absolute(uri)
    if parts is None or not parts.hostname:
        return "must be an absolute http(s) URL without fragment or userinfo"
    allowed = ("https",) if https_only else ("https", "http")
    if parts.scheme.lower() not in allowed:
        return f"must use {' or '.join(allowed)}"
    return None
