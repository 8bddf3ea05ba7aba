"""Which IP address a request comes from, for per-client controls (rate limiting).

Threat model (as werkzeug's ``ProxyFix``): any client can send ``X-Forwarded-For`` or
``Forwarded``, so those headers are believed only when the socket peer is a trusted proxy
(``DCR_TRUSTED_PROXIES``), and then read from the right: each trusted hop appended the address
it saw, so the first address from the right that is *not* a trusted proxy is the client.
Everything left of it is whatever the client wrote and is never read: junk there must not move
a client out of its own bucket (into the proxy's). ``unknown``, obfuscated identifiers
(RFC 7239 §6.3), ``*`` or garbage written by a trusted hop make the header unusable: the peer
is used instead.

IPv6 clients are bucketed by their /64 prefix (one customer usually holds a whole /64), and also
charged to their wider prefix (``DCR_RATE_LIMIT_IPV6_PREFIX``, /48 by default) under
``DCR_RATE_LIMIT_IPV6_FACTOR`` times the limits; IPv4-mapped IPv6 addresses count as the IPv4
address.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable, Mapping

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# RFC 7239 §4: forwarded-element = [ forwarded-pair ] *( ";" [ forwarded-pair ] )
_FOR_PARAM = re.compile(r'(?:^|;)\s*for\s*=\s*("[^"]*"|[^;,\s]*)', re.IGNORECASE)


def parse_networks(entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Parse ``DCR_TRUSTED_PROXIES`` entries (CIDRs or single addresses)."""
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


@functools.lru_cache(maxsize=4096)
def parse_ip(text: str) -> IPAddress | None:
    """An address from a header or a socket: ``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``::1``.

    Cached (addresses are immutable; the same peers and proxies come back on every request).
    """
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _chain(header: str, values: list[str]) -> list[str]:
    joined = ",".join(values)
    if header == "forwarded":
        # An element without "for" is an unusable hop (""), like an empty X-Forwarded-For item.
        matches = (_FOR_PARAM.search(element) for element in joined.split(","))
        return [match.group(1) if match else "" for match in matches]
    return joined.split(",")


def resolve(
    peer: str | None,
    header_values: list[str],
    *,
    trusted: tuple[IPNetwork, ...],
    header: str = "x-forwarded-for",
) -> IPAddress | None:
    """The client address: the peer, or, behind trusted proxies, the first untrusted hop from
    the right of the forwarding header. ``None`` when the peer is unknown (e.g. a Unix socket)."""
    address = parse_ip(peer) if peer else None
    if address is None or not header_values or not _is_trusted(address, trusted):
        return address
    innermost = address
    for hop in reversed(_chain(header, header_values)):
        parsed = parse_ip(hop)
        if parsed is None:
            return address  # a trusted hop wrote "unknown", an obfuscated name, "*" or garbage
        if not _is_trusted(parsed, trusted):
            return parsed
        innermost = parsed
    return innermost  # every hop is a trusted proxy: the request started inside


def _is_trusted(address: IPAddress, trusted: tuple[IPNetwork, ...]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)


def bucket(address: IPAddress | None) -> str:
    """The rate-limit bucket of an address: the IPv4 address, or the IPv6 /64."""
    if address is None:
        return "ip:unknown"
    if isinstance(address, ipaddress.IPv6Address):
        return f"ip:{ipaddress.IPv6Network((address, 64), strict=False)}"
    return f"ip:{address}"


def wide_bucket(address: IPAddress | None, prefix: int) -> str | None:
    """The bucket of an IPv6 address's wider prefix (``ip:2001:db8:1::/48``), charged together
    with its /64: one site usually holds a /48, so it gets a budget of its own. ``None`` for
    IPv4, an unknown peer, or ``prefix`` 0 (off)."""
    if not prefix or not isinstance(address, ipaddress.IPv6Address):
        return None
    return f"ip:{ipaddress.IPv6Network((address, prefix), strict=False)}"


_HOST = re.compile(r"^[A-Za-z0-9.\-]+(?::\d{1,5})?\Z|^\[[0-9A-Fa-f:.]+\](?::\d{1,5})?\Z")
_PROTO_PARAM = re.compile(r'(?:^|;)\s*(proto|host)\s*=\s*("[^"]*"|[^;,\s]*)', re.IGNORECASE)


def safe_host(host: str) -> str:
    """``host`` when it is a plain ``name[:port]`` or ``[v6][:port]``, else ``localhost`` (a
    client must not be able to put arbitrary text into the URLs the server returns)."""
    return host if _HOST.match(host) else "localhost"


def forwarded_origin(
    headers: Mapping[str, str], scheme: str, host: str, header: str = "x-forwarded-for"
) -> tuple[str, str]:
    """The scheme and host a trusted proxy forwarded (the rightmost values, which that proxy
    set), from the same header family as client addresses (``Forwarded`` ``proto``/``host``, or
    ``X-Forwarded-Proto``/``X-Forwarded-Host``), falling back to the given ones for anything
    absent or malformed."""
    found: dict[str, str] = {}
    if header == "forwarded":
        element = headers.get("forwarded", "").split(",")[-1]
        for name, value in _PROTO_PARAM.findall(element):
            found[name.lower()] = value.strip('"')
    else:
        for name in ("proto", "host"):
            value = headers.get(f"x-forwarded-{name}")
            if value:
                found[name] = value.split(",")[-1].strip()
    proto = found.get("proto", "").lower()
    forwarded_host = found.get("host", "")
    return (
        proto if proto in ("http", "https") else scheme,
        forwarded_host if forwarded_host and safe_host(forwarded_host) == forwarded_host else host,
    )
