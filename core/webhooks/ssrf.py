"""Where a webhook may go: the URL rules at registration and the address check at send time.

Two layers, because a name checked once may resolve elsewhere later (DNS rebinding):
- `validate_endpoint_url` when a developer saves a URL: https, no credentials, a host, an allowed
  port, and no literal private address or local name, each refused with a message saying what to do.
- `resolve_checked` when a delivery connects: the host is resolved through the event loop and **every**
  address must be public (`is_global`, not multicast, with IPv4 hidden inside IPv6 unwrapped); the
  delivery then connects to one of exactly those addresses (delivery.py), never resolving again.

`allow_private` (setting WEBHOOK_ALLOW_PRIVATE_TARGETS, development and tests only) lifts the address
and port rules and allows plain http; the shape rules (no credentials, a host) always hold.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from urllib.parse import SplitResult, urlsplit, urlunsplit

from core.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048
# Ports a public receiver may listen on: the web's two and the 8000s developers run servers on
# (8080, 8443, 8000). Every other port is where a public host keeps things that are not a webhook
# receiver (mail, databases, admin consoles), which a merchant's URL must not make us talk to.
ALLOWED_PORTS = frozenset({80, 443, *range(8000, 9000)})
_LOCAL_NAMES = ("localhost", ".localhost", ".local", ".internal", ".home.arpa")
# A last label that is a number makes the whole host an IPv4 address in URL parsers (127.1, 0x7f.1,
# 2130706433): refused unless it is the plain dotted form ipaddress understands and checks.
_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)", re.IGNORECASE)
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class BlockedTarget(Exception):
    """At send time: the host is or resolves to an address webhooks may not reach. Nothing was sent."""


class UnresolvableTarget(Exception):
    """At send time: the host name did not resolve. Nothing was sent."""


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (mapped, 6to4, NAT64, IPv4-compatible), which the
    network may route to and which `is_global` on the IPv6 form does not judge."""
    found = [a for a in (ip.ipv4_mapped, ip.sixtofour) if a is not None]
    if any(ip in net for net in _NAT64) or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def address_problem(ip: IPAddress) -> str | None:
    """Why webhooks may not go to `ip` ("a loopback address", …), or None if it is public."""
    # The embedded IPv4 first: "::ffff:127.0.0.1 is a loopback address" says more than "reserved".
    candidates: list[IPAddress] = [*_embedded_ipv4(ip), ip] if isinstance(ip, ipaddress.IPv6Address) else [ip]
    for addr in candidates:
        # is_global is True for multicast (224.0.0.1, ff02::1), hence the second test.
        if addr.is_global and not addr.is_multicast:
            continue
        for kind, flag in (
            ("an unspecified", addr.is_unspecified),
            ("a loopback", addr.is_loopback),
            ("a link-local", addr.is_link_local),
            ("a multicast", addr.is_multicast),
            ("a private-network", addr.is_private),
        ):
            if flag:
                return f"{kind} address"
        return "a reserved (non-public) address"
    return None


def _host_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _split(url: str, *, allow_private: bool) -> tuple[SplitResult, str, int | None]:
    """The URL's parts if its shape is acceptable (scheme, credentials, host, port, fragment)."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput("url", "give the URL webhooks are sent to, e.g. https://example.com/webhooks")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput("url", f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise InvalidInput("url", "the URL contains spaces or control characters; percent-encode them")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme != "https" and not (allow_private and scheme == "http"):
        raise InvalidInput("url", "use an https:// URL (plain http is allowed only in development)")
    if "@" in parts.netloc:
        raise InvalidInput(
            "url", "remove the user name and password from the URL; receivers check the signature instead"
        )
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InvalidInput("url", "the URL needs a host name, e.g. https://example.com/webhooks")
    try:
        port = parts.port
    except ValueError:
        raise InvalidInput("url", "the port must be a number from 1 to 65535") from None
    if port == 0:
        raise InvalidInput("url", "the port must be a number from 1 to 65535")
    if port is not None and not allow_private and port not in ALLOWED_PORTS:
        raise InvalidInput("url", f"port {port} is not allowed; use 443 (https), 80 or 8000–8999")
    if parts.fragment or url.endswith("#"):
        raise InvalidInput("url", "remove the #fragment; it is never sent to the receiver")
    return parts, host, port


def check_url_shape(url: str, *, allow_private: bool) -> None:
    """Send-time re-check of the rules that need no resolving (the setting may have changed since
    registration); addresses are checked when connecting, by `resolve_checked`."""
    _split(url, allow_private=allow_private)


def validate_endpoint_url(url: str, *, allow_private: bool) -> str:
    """The URL to store for a webhook endpoint, or InvalidInput(field="url") saying what to change.

    Names are not resolved here (a developer may register before their DNS is live); a name that
    later resolves to a private address is refused at each delivery instead.
    """
    parts, host, port = _split(url, allow_private=allow_private)
    host = host.lower()
    literal = _host_literal(host)
    if literal is None:
        labels = host.split(".")
        if _NUMERIC_LABEL.fullmatch(labels[-1]):
            raise InvalidInput(
                "url", "write an IP address as four decimal numbers (a.b.c.d), or use a host name"
            )
        try:
            host.encode("idna")
        except UnicodeError:
            raise InvalidInput("url", f"{host!r} is not a valid host name") from None
        if not allow_private and (host == "localhost" or host.endswith(_LOCAL_NAMES)):
            raise InvalidInput(
                "url", f"{host} is a local name; use a public host name that reaches your server"
            )
    elif not allow_private and (problem := address_problem(literal)):
        raise InvalidInput("url", f"{host} is {problem}; webhooks go only to public internet addresses")
    netloc = f"[{host}]" if isinstance(literal, ipaddress.IPv6Address) else host
    if port is not None:
        netloc += f":{port}"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, ""))


async def resolve_checked(host: str, port: int, *, allow_private: bool) -> list[IPAddress]:
    """The addresses to connect to for `host`, in resolver order, each one public unless
    `allow_private`. Raises BlockedTarget if *any* is not (a name answering one public and one private
    address is refused: the attacker picks which one a later lookup returns)."""
    literal = _host_literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
        except socket.gaierror as exc:
            raise UnresolvableTarget(f"{host} does not resolve ({exc.strerror})") from None
        addresses = []
        for family, *_, sockaddr in infos:
            if family in (socket.AF_INET, socket.AF_INET6):
                ip = ipaddress.ip_address(str(sockaddr[0]))
                if ip not in addresses:
                    addresses.append(ip)
        if not addresses:
            raise UnresolvableTarget(f"{host} has no IPv4 or IPv6 address")
    if not allow_private:
        for ip in addresses:
            if problem := address_problem(ip):
                shown = host if literal is not None else f"{host} resolves to {ip}, which"
                raise BlockedTarget(f"{shown} is {problem}; webhooks go only to public internet addresses")
    return addresses
