"""Notice a server that rewrote the client address from a forwarding header before the middleware.

uvicorn (and gunicorn's ``UvicornWorker``) trust ``X-Forwarded-For`` from ``127.0.0.1`` and
``::1`` by default and replace ``scope["client"]`` with an address taken from it; werkzeug's
``ProxyFix`` and hypercorn's proxy fix do the same to ``REMOTE_ADDR`` or the scope when an
application wraps the middleware in them. The middleware then sees that address as the socket
peer. With ``DCR_TRUSTED_PROXIES`` unset it believes the peer, so behind a proxy on the same host
that passes a client's ``X-Forwarded-For`` through, each client picks its own rate-limit bucket.

The rewrite leaves a trace: the forwarding header is still in the request and the "peer" is one
of the addresses written in it. A real socket peer almost never is (a proxy appends the address
it saw, not its own). The first request showing that trace makes :class:`RewrittenPeerCheck` log
one warning that names the fix; the check then stops looking. It is only a warning: a client
connecting directly and writing its own address in ``X-Forwarded-For`` triggers it too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from .client_ip import parse_ip

logger = logging.getLogger("dcr_middleware")

_FORWARDED_FOR = re.compile(r'(?:^|[;,])\s*for\s*=\s*("[^"]*"|[^;,\s]*)', re.IGNORECASE)

WARNING = (
    "the server rewrote the client address from the %s header before the middleware saw it "
    "(peer %s is an address written in that header) and DCR_TRUSTED_PROXIES is unset: whoever "
    "can send that header to the server chooses their own rate-limit bucket. Turn the server's "
    "proxy handling off (uvicorn --no-proxy-headers; gunicorn -k uvicorn_worker.UvicornWorker "
    "--forwarded-allow-ips ''; no ProxyFix around the middleware) and set DCR_TRUSTED_PROXIES to "
    "your proxies' addresses (docs/deployment.md, 'Behind a reverse proxy: client addresses')"
)


def rewritten_from(peer: str | None, headers: Mapping[str, str]) -> str | None:
    """The forwarding header (``x-forwarded-for`` or ``forwarded``) that holds ``peer`` among its
    addresses, else ``None``: the trace a server leaves when it rewrote the peer from it."""
    if not peer:
        return None
    address = parse_ip(peer)
    if address is None:
        return None
    candidates = {
        "x-forwarded-for": headers.get("x-forwarded-for", "").split(","),
        "forwarded": [m.group(1) for m in _FORWARDED_FOR.finditer(headers.get("forwarded", ""))],
    }
    for name, values in candidates.items():
        if any(parse_ip(value) == address for value in values if value.strip()):
            return name
    return None


class RewrittenPeerCheck:
    """Warns once when requests show a server-side rewrite of the peer address while
    ``DCR_TRUSTED_PROXIES`` is unset (with proxies configured the middleware reads the header
    itself, and a rewritten peer is simply not one of them)."""

    def __init__(self, trusted_proxies: tuple[str, ...]) -> None:
        self.looking = not trusted_proxies

    def see(self, peer: str | None, headers: Mapping[str, str]) -> None:
        """Look at one request's peer and headers; log the warning the first time it fits."""
        if not self.looking or (
            not headers.get("x-forwarded-for") and not headers.get("forwarded")
        ):
            return
        header = rewritten_from(peer, headers)
        if header is not None:
            self.looking = False
            logger.warning(WARNING, header, peer, extra={"event": "peer_rewritten_by_server"})
