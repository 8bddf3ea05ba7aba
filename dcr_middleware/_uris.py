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

import ipaddress
import re
from urllib.parse import SplitResult, urlsplit

# RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
_FORBIDDEN_SCHEMES = frozenset({"javascript", "data", "vbscript", "file", "blob", "about"})
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


def is_loopback_host(host: str | None) -> bool:
    """True for ``localhost`` and loopback IP literals (RFC 8252 §7.3, §8.3)."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redirect_uri_problem(uri: str, *, allow_insecure: bool) -> str | None:
    """Say what is wrong with a redirect URI, or return ``None`` when it is acceptable."""
    parts = split_absolute(uri)
    if parts is None:
        return "must be an absolute ASCII URI without fragment, userinfo or white space"
    scheme = parts.scheme.lower()
    if scheme in _FORBIDDEN_SCHEMES:
        return f"the {scheme}: scheme is not allowed"
    if scheme in ("http", "https"):
        if not parts.hostname:
            return "must name a host"
        if scheme == "http" and not allow_insecure and not is_loopback_host(parts.hostname):
            return "plain http is only allowed for loopback hosts (127.0.0.1, [::1], localhost)"
        return None
    # RFC 8252 §7.1: a private-use URI scheme of a native app; it must carry a path or authority.
    if not (parts.netloc or parts.path):
        return "a private-use scheme redirect URI must have a path"
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
