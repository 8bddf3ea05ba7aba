"""Which IP address a request comes from, for per-client controls (rate limiting).

Threat model (as werkzeug's ``ProxyFix``): any client can send ``X-Forwarded-For`` or
``Forwarded``, so those headers are believed only when the socket peer is a trusted proxy
(``DCR_TRUSTED_PROXIES``), and then read from the right: each trusted hop appended the address
it saw, so the first address from the right that is *not* a trusted proxy is the client. The
leftmost value is never taken on trust (it is whatever the client wrote), and ``unknown``,
obfuscated identifiers (RFC 7239 §6.3), ``*`` or garbage make the whole header unusable: the
peer is used instead.

IPv6 clients are bucketed by their /64 prefix (one customer usually holds a whole /64), and
IPv4-mapped IPv6 addresses count as the IPv4 address.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# RFC 7239 §4: forwarded-element = [ forwarded-pair ] *( ";" [ forwarded-pair ] )
_FOR_PARAM = re.compile(r'(?:^|;)\s*for\s*=\s*("[^"]*"|[^;,\s]*)', re.IGNORECASE)


def parse_networks(entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Parse ``DCR_TRUSTED_PROXIES`` entries (CIDRs or single addresses)."""
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


def parse_ip(text: str) -> IPAddress | None:
    """An address from a header or a socket: ``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``::1``."""
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


def _chain(header: str, values: list[str]) -> list[str] | None:
    joined = ",".join(values)
    if header == "forwarded":
        hops = []
        for element in joined.split(","):
            match = _FOR_PARAM.search(element)
            if match is None:
                return None
            hops.append(match.group(1))
        return hops
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
    hops = _chain(header, header_values)
    if not hops:
        return address
    parsed = [parse_ip(hop) for hop in hops]
    addresses = [hop for hop in parsed if hop is not None]
    if len(addresses) != len(parsed):
        return address  # malformed, "unknown", obfuscated or "*": believe none of it
    for hop in reversed(addresses):
        if not _is_trusted(hop, trusted):
            return hop
    return addresses[0]  # every hop is a trusted proxy: the request started inside


def _is_trusted(address: IPAddress, trusted: tuple[IPNetwork, ...]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)


def bucket(address: IPAddress | None) -> str:
    """The rate-limit bucket of an address: the IPv4 address, or the IPv6 /64."""
    if address is None:
        return "ip:unknown"
    if isinstance(address, ipaddress.IPv6Address):
        return f"ip:{ipaddress.IPv6Network((address, 64), strict=False)}"
    return f"ip:{address}"
