"""Where webhooks may go: URL rules at registration (no network needed) and the address check at send
time, through the event loop's resolver."""

from __future__ import annotations

import ipaddress

import pytest
from cryptography.fernet import Fernet

from core.config import SettingsError, load_settings
from core.errors import InvalidInput
from core.webhooks.ssrf import BlockedTarget, UnresolvableTarget, resolve_checked, validate_endpoint_url

PUBLIC_ONLY = "webhooks go only to public internet addresses"
LOCAL_NAME = "is a local name; use a public host name that reaches your server"
HTTPS = "use an https:// URL (plain http is allowed only in development)"

PRIVATE = [
    ("127.0.0.1", "a loopback address"),
    ("10.1.2.3", "a private-network address"),
    ("172.16.0.5", "a private-network address"),
    ("192.168.1.1", "a private-network address"),
    ("169.254.169.254", "a link-local address"),
    ("100.64.0.1", "a reserved (non-public) address"),
    ("0.0.0.0", "an unspecified address"),
    ("224.0.0.1", "a multicast address"),
    ("::1", "a loopback address"),
    ("fc00::1", "a private-network address"),
    ("fe80::1", "a link-local address"),
    ("ff02::1", "a multicast address"),
    ("::ffff:127.0.0.1", "a loopback address"),
    ("::ffff:169.254.169.254", "a link-local address"),
    ("2002:7f00:1::1", "a loopback address"),  # 6to4 around 127.0.0.1
    ("64:ff9b::a00:1", "a private-network address"),  # NAT64 around 10.0.0.1
]


def _refused(url: str, *, allow_private: bool = False) -> str:
    with pytest.raises(InvalidInput) as info:
        validate_endpoint_url(url, allow_private=allow_private)
    assert info.value.field == "url"
    return info.value.message


@pytest.mark.parametrize(("address", "kind"), PRIVATE)
def test_private_literals_are_refused_at_registration(address: str, kind: str) -> None:
    host = f"[{address}]" if ":" in address else address
    assert _refused(f"https://{host}/hooks") == f"{address} is {kind}; {PUBLIC_ONLY}"
    # The development setting lets them through (a receiver on this machine).
    assert validate_endpoint_url(f"https://{host}/hooks", allow_private=True) == f"https://{host}/hooks"


@pytest.mark.parametrize(("address", "kind"), PRIVATE)
async def test_private_literals_are_refused_at_send_time(address: str, kind: str) -> None:
    with pytest.raises(BlockedTarget) as info:
        await resolve_checked(address, 443, allow_private=False)
    assert str(info.value) == f"{address} is {kind}; {PUBLIC_ONLY}"
    assert await resolve_checked(address, 443, allow_private=True) == [ipaddress.ip_address(address)]


async def test_a_name_resolving_to_loopback_is_refused_at_send_time() -> None:
    with pytest.raises(BlockedTarget) as info:
        await resolve_checked("localhost", 443, allow_private=False)
    message = str(info.value)
    assert message.startswith("localhost resolves to ")
    assert message.endswith(f", which is a loopback address; {PUBLIC_ONLY}")
    addresses = await resolve_checked("localhost", 443, allow_private=True)
    assert addresses and all(ip.is_loopback for ip in addresses)


async def test_a_name_that_does_not_resolve() -> None:
    with pytest.raises(UnresolvableTarget, match=r"^nothing\.invalid does not resolve"):
        await resolve_checked("nothing.invalid", 443, allow_private=False)


async def test_a_public_literal_passes_without_any_lookup() -> None:
    assert await resolve_checked("41.90.1.1", 443, allow_private=False) == [ipaddress.ip_address("41.90.1.1")]


def test_public_urls_are_accepted_and_normalised() -> None:
    assert validate_endpoint_url("https://41.90.1.1/hooks", allow_private=False) == "https://41.90.1.1/hooks"
    assert validate_endpoint_url("https://[2606:4700::1111]:8443/h", allow_private=False) == (
        "https://[2606:4700::1111]:8443/h"
    )
    assert validate_endpoint_url(" HTTPS://Shop.Example.COM?x=1 ", allow_private=False) == (
        "https://shop.example.com/?x=1"
    )
    assert validate_endpoint_url("https://api.example.co.ke:8080/mpesa/hooks", allow_private=False) == (
        "https://api.example.co.ke:8080/mpesa/hooks"
    )


def test_url_rules_at_registration() -> None:
    assert _refused("http://shop.example.com/hooks") == HTTPS
    assert validate_endpoint_url("http://shop.example.com/hooks", allow_private=True) == (
        "http://shop.example.com/hooks"
    )
    assert _refused("ftp://shop.example.com/") == HTTPS
    assert _refused("https://user:pass@shop.example.com/hooks") == (
        "remove the user name and password from the URL; receivers check the signature instead"
    )
    with_user = "https://user:pass@shop.example.com/hooks"
    assert _refused(with_user, allow_private=True).startswith("remove the user")
    assert _refused("https:///hooks") == "the URL needs a host name, e.g. https://example.com/webhooks"
    assert _refused("https://shop.example.com:22/") == (
        "port 22 is not allowed; use 443 (https), 80 or 8000–8999"
    )
    assert validate_endpoint_url("https://shop.example.com:6379/", allow_private=True).endswith(":6379/")
    assert _refused("https://shop.example.com:99999/") == "the port must be a number from 1 to 65535"
    assert _refused("https://shop.example.com/hooks#x") == (
        "remove the #fragment; it is never sent to the receiver"
    )
    assert _refused("https://localhost/hooks") == f"localhost {LOCAL_NAME}"
    assert _refused("https://printer.local/") == f"printer.local {LOCAL_NAME}"
    for numeric in ("https://2130706433/", "https://127.1/", "https://0x7f.0.0.1/"):
        assert _refused(numeric) == (
            "write an IP address as four decimal numbers (a.b.c.d), or use a host name"
        )
    assert _refused("https://shop.example.com/a b") == (
        "the URL contains spaces or control characters; percent-encode them"
    )
    assert _refused("") == "give the URL webhooks are sent to, e.g. https://example.com/webhooks"
    assert _refused("https://shop.example.com/" + "a" * 2048) == "the URL is longer than 2048 characters"


def test_the_development_setting_is_refused_in_production() -> None:
    production = {
        "APP_ENV": "production",
        "PUBLIC_BASE_URL": "https://pay.example.com",
        "SECRET_KEY": "x" * 40,
        "ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "AT_CALLBACK_SECRET": "s" * 20,
    }
    assert load_settings(**production).WEBHOOK_ALLOW_PRIVATE_TARGETS is False
    with pytest.raises(SettingsError) as info:
        load_settings(**production, WEBHOOK_ALLOW_PRIVATE_TARGETS=True)
    assert "WEBHOOK_ALLOW_PRIVATE_TARGETS: development only" in str(info.value)
    assert load_settings(WEBHOOK_ALLOW_PRIVATE_TARGETS=True).WEBHOOK_ALLOW_PRIVATE_TARGETS is True
