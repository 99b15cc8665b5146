"""Wrong passwords are counted per account and network and per network, never against the account
alone (issue 15, finding 5): a stranger hammering an owner's email from one network holds only that
network, the owner signs in from any other (API and panel), a browser that signed in before is held by
nobody else's failures, an email with no account answers exactly like one with an account, and one
network trying many accounts is held across them.

The network is the client address uvicorn takes from X-Forwarded-For, which the test server trusts from
loopback (FORWARDED_ALLOW_IPS' default), as production trusts its proxy."""

from __future__ import annotations

import html
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
from sqlalchemy import select

from core.audit.models import AuditLog
from core.auth.login_limits import ACCOUNT_LIMITED, NETWORK_LIMITED, network_of
from core.config import Settings
from core.runtime import unit_of_work
from tests.conftest import LiveServer
from tests.support.factories import make_tenant, unique_email
from tests.support.panel import csrf_of, password_step, sign_in

PASSWORD = "secret-pass-1"
WRONG = {"error": "authentication_failed", "detail": "Wrong email or password."}
# Headers that differ between any two answers whatever they are about.
PER_REQUEST = {"date", "x-request-id", "retry-after", "content-length"}


def a_network() -> str:
    """An address of its own (100.64.0.0/10, the shared space carriers put many phones behind)."""
    return f"100.{secrets.randbelow(64) + 64}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"


@asynccontextmanager
async def from_network(server: LiveServer, ip: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, headers={"X-Forwarded-For": ip}, timeout=30) as c:
        yield c


@pytest.fixture
def lower_network_limit(server: LiveServer) -> Iterator[None]:
    """The tests that reach the network-wide limit reach a lower one: every wrong password costs an
    argon2 check, and fifty of them are slow on a busy machine. Put back after the test."""
    settings = server.settings
    before = settings.LOGIN_MAX_FAILURES_PER_NETWORK
    settings.LOGIN_MAX_FAILURES_PER_NETWORK = settings.LOGIN_MAX_FAILURES_PER_ACCOUNT_NETWORK + 5
    try:
        yield
    finally:
        settings.LOGIN_MAX_FAILURES_PER_NETWORK = before


def limits(server: LiveServer) -> tuple[int, int, int]:
    s = server.settings
    return (
        s.LOGIN_MAX_FAILURES_PER_ACCOUNT_NETWORK,
        s.LOGIN_MAX_FAILURES_PER_NETWORK,
        s.LOGIN_FAILURE_WINDOW_MINUTES,
    )


async def api_login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/api/login", json={"email": email, "password": password})


def assert_limited(r: httpx.Response, server: LiveServer, message: str) -> None:
    window = limits(server)[2]
    assert (r.status_code, r.json()) == (
        429,
        {"error": "too_many_requests", "detail": message.format(minutes=window)},
    ), r.text
    assert 1 <= int(r.headers["retry-after"]) <= window * 60


def held(r: httpx.Response, server: LiveServer, message: str) -> None:
    """The panel's sign-in page, refused with `message` and Retry-After."""
    window = limits(server)[2]
    assert r.status_code == 429, r.text
    said = message.format(minutes=window)
    assert f'<p class="error" id="password-error">{said}</p>' in html.unescape(r.text)
    assert 1 <= int(r.headers["retry-after"]) <= window * 60


def comparable(r: httpx.Response) -> tuple[int, object, dict[str, str], bool]:
    """Everything an answer says, but what differs per request (and whether Retry-After is there)."""
    headers = {k: v for k, v in r.headers.items() if k.lower() not in PER_REQUEST}
    return r.status_code, r.json(), headers, "retry-after" in r.headers


async def audit_actions(user_id: uuid.UUID) -> list[str]:
    async with unit_of_work(readonly=True) as session:
        rows = await session.scalars(
            select(AuditLog.action)
            .where(AuditLog.user_id == user_id, AuditLog.action.like("auth.login%"))
            .order_by(AuditLog.id)
        )
        return list(rows)


class TestApi:
    async def test_a_stranger_holds_only_their_own_network(self, server: LiveServer) -> None:
        most = limits(server)[0]
        _, owner = await make_tenant(name="Limit Api Duka")
        async with from_network(server, a_network()) as attacker:
            for _ in range(most):
                r = await api_login(attacker, owner.email, "guess-pass-0")
                assert (r.status_code, r.json()) == (401, WRONG)
                assert "retry-after" not in r.headers
            # the network is held now: even the right password is not looked at
            assert_limited(await api_login(attacker, owner.email, PASSWORD), server, ACCOUNT_LIMITED)
            assert_limited(await api_login(attacker, owner.email, "guess-pass-1"), server, ACCOUNT_LIMITED)
        async with from_network(server, a_network()) as own:
            r = await api_login(own, owner.email, PASSWORD)
            assert r.status_code == 200, r.text
            assert r.json()["tenant_id"] == str(owner.tenant_id)
        # one audit row per wrong password checked, one when the limit was reached, none per refusal
        assert await audit_actions(owner.id) == [
            *["auth.login_failed"] * most,
            "auth.login_limited",
            "auth.login",
        ]

    async def test_unknown_and_real_emails_answer_the_same_every_time(self, server: LiveServer) -> None:
        most = limits(server)[0]
        _, owner = await make_tenant(name="Limit Oracle Duka")
        nobody = unique_email("nobody")
        answers: list[tuple[object, object]] = []
        async with from_network(server, a_network()) as one, from_network(server, a_network()) as two:
            for _ in range(most + 2):
                real = await api_login(one, owner.email, "guess-pass-0")
                unknown = await api_login(two, nobody, "guess-pass-0")
                assert comparable(real) == comparable(unknown)
                answers.append((real.status_code, real.json()))
        assert answers == [(401, WRONG)] * most + [
            (429, {"error": "too_many_requests", "detail": ACCOUNT_LIMITED.format(minutes=limits(server)[2])})
        ] * 2

    @pytest.mark.usefixtures("lower_network_limit")
    async def test_a_network_is_held_across_accounts(self, server: LiveServer) -> None:
        most, per_network, _ = limits(server)
        _, owner = await make_tenant(name="Limit Network Duka")
        _, other = await make_tenant(name="Limit Network Other Duka")
        spraying = a_network()
        async with from_network(server, spraying) as attacker:
            # one wrong password each for many addresses (and a few for a real one), under any
            # account's own limit
            sprayed = 0
            while sprayed < per_network:
                email = other.email if sprayed < most - 1 else unique_email("sprayed")
                r = await api_login(attacker, email, "guess-pass-0")
                assert (r.status_code, r.json()) == (401, WRONG)
                sprayed += 1
            assert_limited(await api_login(attacker, owner.email, PASSWORD), server, NETWORK_LIMITED)
            assert_limited(await api_login(attacker, unique_email("fresh"), "x"), server, NETWORK_LIMITED)
        async with from_network(server, a_network()) as elsewhere:
            assert (await api_login(elsewhere, owner.email, PASSWORD)).status_code == 200
            assert (await api_login(elsewhere, other.email, PASSWORD)).status_code == 200

    async def test_a_right_password_takes_its_try_back_and_clears_the_account(
        self, server: LiveServer
    ) -> None:
        most = limits(server)[0]
        _, owner = await make_tenant(name="Limit Clear Duka")
        async with from_network(server, a_network()) as own:
            for _ in range(most - 1):
                assert (await api_login(own, owner.email, "typo-pass-0")).status_code == 401
            assert (await api_login(own, owner.email, PASSWORD)).status_code == 200
            for _ in range(most - 1):  # the count started again at the sign-in
                assert (await api_login(own, owner.email, "typo-pass-0")).status_code == 401
            assert (await api_login(own, owner.email, PASSWORD)).status_code == 200


class TestPanel:
    async def test_the_owner_signs_in_from_another_network(self, server: LiveServer) -> None:
        most = limits(server)[0]
        _, owner = await make_tenant(name="Limit Panel Duka")
        async with from_network(server, a_network()) as attacker:
            for _ in range(most):
                r = await password_step(attacker, owner.email, "guess-pass-0")
                assert r.status_code == 401 and "Wrong email or password." in r.text
            held(await password_step(attacker, owner.email, PASSWORD), server, ACCOUNT_LIMITED)
            assert (await attacker.get("/app")).status_code == 303  # not signed in
        async with from_network(server, a_network()) as own:
            await sign_in(own, owner.email, PASSWORD)
            assert (await own.get("/app")).status_code == 200

    async def test_unknown_and_real_emails_show_the_same_page(self, server: LiveServer) -> None:
        most = limits(server)[0]
        _, owner = await make_tenant(name="Limit Panel Oracle Duka")
        nobody = unique_email("nobody")
        async with from_network(server, a_network()) as one, from_network(server, a_network()) as two:
            for _ in range(most + 2):
                real = await password_step(one, owner.email, "guess-pass-0")
                unknown = await password_step(two, nobody, "guess-pass-0")
                assert real.status_code == unknown.status_code
                assert ("retry-after" in real.headers) == ("retry-after" in unknown.headers)
                # the same page but for the email typed and the form's CSRF token
                assert page_of(real.text, owner.email) == page_of(unknown.text, nobody)

    @pytest.mark.usefixtures("lower_network_limit")
    async def test_a_known_browser_is_not_held_by_its_network(self, server: LiveServer) -> None:
        """The owner and the stranger share one address (a carrier's NAT): the browser the owner
        signed in with before still signs in, though the stranger's wrong passwords hold that address
        for the owner's email and for every email; a fresh browser there is held; the known browser's
        own wrong passwords still count, on their own."""
        most, per_network, _ = limits(server)
        _, owner = await make_tenant(name="Limit Device Duka")
        _, stranger_account = await make_tenant(name="Limit Device Stranger Duka")
        shared = a_network()
        async with from_network(server, shared) as browser:
            await sign_in(browser, owner.email, PASSWORD)
            assert browser.cookies.get("lp_device")
            await sign_out(browser)

            async with from_network(server, shared) as attacker:
                # the stranger's own known-device cookie names their account: no help against the owner
                await sign_in(attacker, stranger_account.email, PASSWORD)
                for n in range(per_network):
                    email = owner.email if n < most else unique_email("sprayed")
                    assert (await password_step(attacker, email, "guess-pass-0")).status_code == 401
                held(await password_step(attacker, owner.email, PASSWORD), server, ACCOUNT_LIMITED)
                r = await password_step(attacker, stranger_account.email, PASSWORD)  # a known device...
                assert r.status_code == 303  # ...of its own account
            async with from_network(server, shared) as fresh:
                held(await password_step(fresh, owner.email, PASSWORD), server, ACCOUNT_LIMITED)
                held(await password_step(fresh, stranger_account.email, PASSWORD), server, NETWORK_LIMITED)

            r = await password_step(browser, owner.email, PASSWORD)
            assert (r.status_code, r.headers["location"]) == (303, "/app")
            await sign_out(browser)
            for _ in range(most):
                assert (await password_step(browser, owner.email, "typo-pass-0")).status_code == 401
            assert (await password_step(browser, owner.email, PASSWORD)).status_code == 429

    async def test_a_forged_device_cookie_is_a_stranger(self, server: LiveServer) -> None:
        most = limits(server)[0]
        _, owner = await make_tenant(name="Limit Forged Device Duka")
        net = a_network()
        async with from_network(server, a_network()) as browser:
            await sign_in(browser, owner.email, PASSWORD)
            genuine = browser.cookies["lp_device"]
        uid, device, expires, mac = genuine.split(".")
        forged = f"{uid}.{device}.{expires}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}"
        async with from_network(server, net) as attacker:
            attacker.cookies.set("lp_device", forged)
            for _ in range(most):
                assert (await password_step(attacker, owner.email, "guess-pass-0")).status_code == 401
            assert (await password_step(attacker, owner.email, PASSWORD)).status_code == 429


async def sign_out(client: httpx.AsyncClient) -> None:
    page = await client.get("/app")
    r = await client.post("/logout", data={"csrf_token": csrf_of(page.text)})
    assert (r.status_code, r.headers["location"]) == (303, "/login")


def page_of(text: str, email: str) -> str:
    text = text.replace(email, "EMAIL")
    return re.sub(r'name="csrf_token" value="[^"]+"', 'name="csrf_token" value=""', text)


def test_the_defaults() -> None:
    names = (
        "LOGIN_MAX_FAILURES_PER_ACCOUNT_NETWORK",
        "LOGIN_MAX_FAILURES_PER_NETWORK",
        "LOGIN_FAILURE_WINDOW_MINUTES",
        "LOGIN_KNOWN_DEVICE_DAYS",
    )
    assert [Settings.model_fields[n].default for n in names] == [10, 50, 15, 180]


def test_a_network_is_an_ipv4_address_or_an_ipv6_64() -> None:
    assert network_of("203.0.113.7") == "203.0.113.7"
    assert network_of("2001:db8:1:2:aaaa::1") == network_of("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert network_of("2001:db8:1:3::1") != network_of("2001:db8:1:2::1")
    assert network_of("::ffff:203.0.113.7") == "203.0.113.7"
    assert network_of(None) == "unknown"
