"""Which IP addresses the guarded fetcher may connect to: public unicast only.

Theory of operation. An address is classified by the IANA special-purpose address registries
(RFC 6890 and its updates), written out below rather than taken from :mod:`ipaddress`'s
``is_private``/``is_global``, whose tables changed between Python patch releases: the same
address must get the same answer on every supported Python. IPv6 forms that carry an IPv4
address (IPv4-mapped ``::ffff:0:0/96``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16`` and Teredo
``2001::/32``) are classified by the IPv4 address they carry, so ``::ffff:10.0.0.1`` is as
private as ``10.0.0.1``. Everything outside global unicast (``2000::/3`` for IPv6) is refused.

The operator may allow networks (for local testing, e.g. ``127.0.0.0/8``): an address inside
one is accepted whatever its class.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

PUBLIC = "public"


def _table(rows: Iterable[tuple[str, str]]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ip_network(cidr), kind) for cidr, kind in rows)


# IANA IPv4 Special-Purpose Address Registry. Blocks that are globally reachable anycast
# services (AS112, AMT) are left public: nothing on them is ours to protect.
_IPV4 = _table(
    [
        ("0.0.0.0/8", "unspecified"),  # "this network": 0.0.0.0 reaches the local host on Linux
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared"),  # RFC 6598 carrier-grade NAT
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link_local"),  # cloud metadata services live here
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "reserved"),  # IETF protocol assignments
        ("192.0.2.0/24", "reserved"),  # documentation (TEST-NET-1)
        ("192.88.99.0/24", "reserved"),  # deprecated 6to4 relay anycast
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "reserved"),  # benchmarking
        ("198.51.100.0/24", "reserved"),  # documentation (TEST-NET-2)
        ("203.0.113.0/24", "reserved"),  # documentation (TEST-NET-3)
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),  # future use, and the limited broadcast address
    ]
)

# IANA IPv6 Special-Purpose Address Registry, after the embedded-IPv4 forms are taken out.
_IPV6 = _table(
    [
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("64:ff9b:1::/48", "private"),  # RFC 8215 local-use IPv4/IPv6 translation
        ("100::/64", "reserved"),  # discard-only
        ("2001::/23", "reserved"),  # IETF protocol assignments (Teredo is taken out before)
        ("2001:db8::/32", "reserved"),  # documentation
        ("3fff::/20", "reserved"),  # documentation (RFC 9637)
        ("5f00::/16", "reserved"),  # segment routing SIDs (RFC 9602)
        ("fc00::/7", "private"),  # unique local
        ("fe80::/10", "link_local"),
        ("fec0::/10", "private"),  # deprecated site-local
        ("ff00::/8", "multicast"),
    ]
)
_GLOBAL_UNICAST = ip_network("2000::/3")
_NAT64 = ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix: the last 32 bits are IPv4


def parse_address(text: str) -> IPAddress | None:
    """``text`` as an IP address (an IPv6 zone such as ``%eth0`` allowed), or ``None``."""
    try:
        return ip_address(text)
    except ValueError:
        return None


def embedded_ipv4(address: IPv6Address) -> tuple[IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address carries: IPv4-mapped, NAT64, 6to4 or Teredo (its
    server and its client); empty for any other address."""
    if address.ipv4_mapped is not None:
        return (address.ipv4_mapped,)
    if address in _NAT64:
        return (IPv4Address(int(address) & 0xFFFFFFFF),)
    if address.sixtofour is not None:
        return (address.sixtofour,)
    if address.teredo is not None:
        return address.teredo
    return ()


def _lookup(address: IPAddress, table: tuple[tuple[IPNetwork, str], ...]) -> str | None:
    return next((kind for network, kind in table if address in network), None)


def classify(address: IPAddress) -> str:
    """The class of ``address``: ``public``, ``loopback``, ``private``, ``shared`` (CGNAT),
    ``link_local``, ``multicast``, ``reserved`` or ``unspecified``."""
    if isinstance(address, IPv4Address):
        return _lookup(address, _IPV4) or PUBLIC
    carried = embedded_ipv4(address)
    if carried:
        # Refused when any carried address is: the packet may end up at either.
        return next((kind for kind in map(classify, carried) if kind != PUBLIC), PUBLIC)
    kind = _lookup(address, _IPV6)
    if kind is None and address not in _GLOBAL_UNICAST:
        return "reserved"
    return kind or PUBLIC


def allowed(address: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    """Whether the fetcher may connect to ``address``: public, or inside one of the operator's
    ``networks`` (checked against the address and any IPv4 address it carries)."""
    forms: tuple[IPAddress, ...] = (address,)
    if isinstance(address, IPv6Address):
        forms += embedded_ipv4(address)
    if any(form in network for form in forms for network in networks):
        return True
    return classify(address) == PUBLIC
