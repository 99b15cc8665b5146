"""The network a request came from, as usage records and compares it."""

from __future__ import annotations

import ipaddress


def network_of(ip: str | None) -> str | None:
    """An IPv4 address's /24 or an IPv6 address's /64 ("41.90.12.0/24"): the size of one office, one
    mobile carrier's pool or one home, so a key's usual system stays one network when its address
    moves within it. None when there is no address (or not one: a test client's name)."""
    if not ip:
        return None
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is None:
            return str(ipaddress.ip_network(f"{addr}/64", strict=False))
        addr = addr.ipv4_mapped
    return str(ipaddress.ip_network(f"{addr}/24", strict=False))
