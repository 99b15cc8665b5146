"""Same actor, same answer in the API, the panel, the bot and USSD.

core/access decides what an actor may do (`Actor.can(permission)`); every front end builds an Actor and
asks core. These tests hold the front ends to it. For each business role, and in the panel for a platform
admin viewing a business read-only, each operation that several front ends offer is tried in every one of
them the way a person would (an API call, a form post with its CSRF token, a bot command or button, a
USSD menu choice), and each must allow or refuse exactly as core says: a refusal in core's own words
(USSD has none: it hides the option), and a refusal changes nothing.

One small adapter per front end answers "does it let this user do X?". A front end that does not offer
an operation has no cell for it (the bot has no API keys; USSD has no customer book, alert level,
invitations or keys). What a person is shown must agree too: the bot's main menu is a column of its own,
and a USSD option is shown exactly when choosing it works.

A cell that disagrees fails the test with the whole matrix (core and every front end) in the message.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import random
import re
import time
import uuid
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from core.access.actor import Actor, Via
from core.access.permissions import Permission
from core.audit.models import AuditLog
from core.auth.codes import CodePurpose, OneTimeCode, issue_code
from core.auth.models import Role, User
from core.auth.pins import new_pin_hash, register_ussd
from core.customers.service import customers
from core.db import utcnow
from core.errors import PermissionDenied
from core.payments.models import Payment
from core.phones import Msisdn, normalize_msisdn
from core.runtime import unit_of_work
from core.tenants.models import Mode, Tenant
from sim.africastalking import UssdGateway
from sim.telegram.client import SimMessage, TelegramSimClient
from tests.conftest import BOT_TOKEN, LiveServer
from tests.support.factories import make_tenant, make_user
from tests.support.panel import admin_client, business_client, csrf_of
from tests.ussd.conftest import PIN, intl, merchant_phone

T = 15.0  # deadline for a bot reply (not a timing assertion)
PAY_TO = "0722000111"  # a customer the simulator pays
BOOK_PHONE = "0722000999"  # already in the customer book, so the bot's book has an export button
_chats = itertools.count(random.randint(860_000_000, 869_000_000), 17)  # Telegram ids no other test uses


class Op(StrEnum):
    pay = "request a payment"
    wallet = "view the wallet"
    alert_level = "set the low-balance alert level"
    customers = "open the customer book"
    export = "export customers"
    invite = "invite staff"
    api_key = "create an API key"


PERMISSION: dict[Op, Permission] = {
    Op.pay: Permission.payments_request,
    Op.wallet: Permission.wallet_read,
    Op.alert_level: Permission.wallet_settings,
    Op.customers: Permission.customers_read,
    Op.export: Permission.exports,
    Op.invite: Permission.staff_manage,
    Op.api_key: Permission.api_keys_manage,
}

# The table itself, pinned in a few cells: if ROLE_PERMISSIONS goes wrong, these fail even when every
# front end faithfully follows it. None stands for the platform admin viewing a business read-only.
PINNED: list[tuple[Role | None, Op, bool]] = [
    (Role.cashier, Op.pay, True),
    (Role.cashier, Op.wallet, False),
    (Role.manager, Op.export, True),
    (Role.manager, Op.alert_level, False),
    (Role.owner, Op.invite, True),
    (None, Op.wallet, True),
    (None, Op.pay, False),
]


def read_only_admin(admin_id: uuid.UUID, tenant: Tenant) -> Actor:
    return Actor.impersonating(admin_id=admin_id, tenant_id=tenant.id, writes=False, tenant_name=tenant.name)


def business_actor(user: User, tenant: Tenant) -> Actor:
    return Actor.for_user(
        user_id=user.id, tenant_id=tenant.id, role=user.role, via=Via.api, tenant_name=tenant.name
    )


def refusal(actor: Actor, op: Op) -> str:
    """Core's own words for refusing `op` to `actor`; "" when core allows it."""
    try:
        actor.require(PERMISSION[op])
    except PermissionDenied as exc:
        return exc.message
    return ""


@dataclass(frozen=True)
class Answer:
    allowed: bool
    said: str | None = None  # the refusal's words; None where a front end has none (a hidden option)


ALLOWED = Answer(True)


# -- the business each test makes for itself ------------------------------------------------------------
@dataclass
class Business:
    tenant: Tenant
    owner: User
    user: User  # whose answers are compared: the owner, a manager or a cashier


async def open_business(role: Role) -> Business:
    tenant, owner = await make_tenant(name=f"Parity {role.value.title()} Duka")
    user = owner if role is Role.owner else await make_user(tenant=tenant, role=role)
    async with unit_of_work() as session:
        await customers.record_request(
            session,
            tenant_id=tenant.id,
            mode=Mode.live,
            phone=normalize_msisdn(BOOK_PHONE),
            name="Wanjiru",
            amount=100,
            at=utcnow(),
        )
    return Business(tenant, owner, user)


# -- API ----------------------------------------------------------------------------------------------
# op: method, path, success status, JSON body
API: dict[Op, tuple[str, str, int, dict[str, Any] | None]] = {
    Op.pay: ("POST", "/api/stk-push", 201, {"phone": PAY_TO, "amount": 10}),
    Op.wallet: ("GET", "/api/wallet", 200, None),
    Op.alert_level: ("POST", "/api/wallet/settings", 200, {"low_balance_threshold": 700}),
    Op.customers: ("GET", "/api/customers", 200, None),
    Op.export: ("GET", "/api/customers/export-excel", 200, None),
    Op.invite: ("POST", "/api/staff/invite", 201, {"role": "cashier"}),
    Op.api_key: ("POST", "/api/api-keys", 201, {"name": "parity"}),
}


class ApiFrontEnd:
    name = "api"

    def __init__(self, http: httpx.AsyncClient, token: str) -> None:
        self.http = http
        self.headers = {"Authorization": f"Bearer {token}"}

    @classmethod
    async def login(cls, http: httpx.AsyncClient, user: User) -> ApiFrontEnd:
        r = await http.post("/api/login", json={"email": user.email, "password": "secret-pass-1"})
        assert r.status_code == 200, r.text
        return cls(http, r.json()["access_token"])

    def offers(self, op: Op) -> bool:
        return op in API

    async def ask(self, op: Op) -> Answer:
        method, path, ok, body = API[op]
        r = await self.http.request(method, path, json=body, headers=self.headers)
        if r.status_code == 403:
            err = r.json()
            assert err.get("error") == "permission_denied", f"{method} {path}: {r.text}"
            return Answer(False, str(err.get("detail")))
        assert r.status_code == ok, (
            f"{method} {path}: neither done nor refused: {r.status_code} {r.text[:300]}"
        )
        return ALLOWED


# -- panel --------------------------------------------------------------------------------------------
# op: method, path, success status, form fields
PANEL: dict[Op, tuple[str, str, int, dict[str, str] | None]] = {
    Op.pay: ("POST", "/app/pay", 303, {"phone": PAY_TO, "amount": "10"}),
    Op.wallet: ("GET", "/app/wallet", 200, None),
    Op.alert_level: ("POST", "/app/wallet/threshold", 303, {"threshold": "800"}),
    Op.customers: ("GET", "/app/customers", 200, None),
    Op.export: ("GET", "/app/customers/export.xlsx", 200, None),
    Op.invite: ("POST", "/app/settings/staff/invite", 201, {"role": "cashier"}),
    # the form on Settings → API keys
    Op.api_key: ("POST", "/app/settings/keys", 201, {"name": "parity", "mode": "live"}),
}


def page_message(page: str) -> str:
    """The message of the panel's error page."""
    match = re.search(r'<p class="error-text">(.*?)</p>', page, re.S)
    return html.unescape(" ".join(re.sub(r"<[^>]+>", " ", match.group(1) if match else page).split()))


class PanelFrontEnd:
    name = "panel"

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.csrf = ""

    async def start(self) -> PanelFrontEnd:
        # The dashboard opens for every role and for an admin viewing as the business: its form's
        # CSRF token is the session's, good for every form post.
        home = await self.http.get("/app")
        assert home.status_code == 200, home.text[:300]
        self.csrf = csrf_of(home.text)
        return self

    def offers(self, op: Op) -> bool:
        return op in PANEL

    async def ask(self, op: Op) -> Answer:
        method, path, ok, form = PANEL[op]
        if method == "POST":
            r = await self.http.post(path, data={**(form or {}), "csrf_token": self.csrf})
        else:
            r = await self.http.get(path)
        if r.status_code == 403:
            return Answer(False, page_message(r.text))
        assert r.status_code == ok, (
            f"{method} {path}: neither done nor refused: {r.status_code} {r.text[:300]}"
        )
        return ALLOWED


# -- Telegram bot -------------------------------------------------------------------------------------
def has(text: str) -> Callable[[SimMessage], bool]:
    return lambda m: text in m.content


# Main-menu buttons that lead to an operation (⚙️ Settings, the way to the alert level and invitations,
# is the owner's: it shows the M-Pesa channel, Permission.channel_manage).
MENU_BUTTONS: dict[Op, str] = {
    Op.pay: "💸 Request payment",
    Op.wallet: "👛 Wallet",
    Op.customers: "👥 Customers",
}


class BotFrontEnd:
    """A chat with the real bot through the Telegram stand-in.

    Buttons stay on old messages and the bot checks every press again, so the chat is linked to the
    owner first, who opens ⚙️ Settings, 👥 Staff and the customer book; then it is linked to the user
    under test (as when a phone changes hands), who presses those buttons."""

    name = "bot"

    def __init__(self, tg: TelegramSimClient) -> None:
        self.tg = tg
        self.menu: list[str] = []

    async def link(self, tenant: Tenant, user: User) -> SimMessage:
        async with unit_of_work() as session:
            code, _ = await issue_code(
                session, purpose=CodePurpose.telegram_link, tenant_id=tenant.id, user_id=user.id
            )
        return await self.tg.ask(f"/start {code}", has("What would you like to do?"), timeout=T)

    async def start(self, biz: Business) -> BotFrontEnd:
        await self.tg.create_user("Parity", user_id=next(_chats))
        menu = await self.link(biz.tenant, biz.owner)
        await self.tg.ask("/settings", has("Low-balance alert below"), timeout=T)
        await self.pressed("👥 Staff", "Invite someone")
        await self.tg.ask("/customers", has("Wanjiru"), timeout=T)
        if biz.user.id != biz.owner.id:
            menu = await self.link(biz.tenant, biz.user)
        self.menu = menu.button_texts
        return self

    def offers(self, op: Op) -> bool:
        return op is not Op.api_key

    async def last_id(self) -> int:
        transcript = await self.tg.transcript()
        return transcript[-1].message_id if transcript else 0

    async def said(self, text: str, expected: str) -> Answer:
        """Send a message; the reply is a refusal (⚠️ …) or what `expected` names."""
        reply = await self.tg.ask(
            text, lambda m: m.content.startswith("⚠️") or expected in m.content, timeout=T
        )
        return Answer(False, reply.content) if reply.content.startswith("⚠️") else ALLOWED

    async def pressed(self, button: str, expected: str) -> Answer:
        """Press a button; the bot refuses in an alert on the press, or answers with what `expected`
        names."""
        after = await self.last_id()
        update = await self.tg.press_button(button)
        deadline = time.monotonic() + T
        while not (answer := await self.tg.callback_answer(update["callback_query"]["id"]))["answered"]:
            assert time.monotonic() < deadline, f"the bot never answered the press on {button!r}"
            await asyncio.sleep(0.02)
        if answer.get("show_alert"):
            return Answer(False, str(answer.get("text")))
        await self.tg.wait_for_bot_message(predicate=has(expected), timeout=T, after=after)
        return ALLOWED

    async def ask(self, op: Op) -> Answer:
        if op is Op.pay:  # the whole flow: the push is where core decides
            started = await self.said("/pay", "Customer's phone number?")
            if not started.allowed:
                return started
            await self.tg.ask(PAY_TO, has("Amount in KES"), timeout=T)
            await self.tg.ask("10", has("Customer name?"), timeout=T)
            return await self.said("Parity", "M-Pesa prompt sent")
        if op is Op.wallet:
            return await self.said("/wallet", "👛 Wallet\nBalance")
        if op is Op.customers:
            return await self.said("/customers", "Customers (")
        if op is Op.alert_level:
            asked = await self.pressed("✏️ Low-balance alert level", "Alert me when the wallet drops below")
            if asked.allowed:
                await self.tg.ask("900", has("✅ Low-balance alert level set"), timeout=T)
            return asked
        if op is Op.export:
            exported = await self.pressed("📤 Export to Excel", "Preparing the customer book")
            if exported.allowed:  # the file itself, so the export is done before the test looks at rows
                await self.tg.wait_for_bot_message(predicate=lambda m: m.document is not None, timeout=T)
            return exported
        if op is Op.invite:
            return await self.pressed("➕ Invite cashier", "Cashier invitation")
        raise AssertionError(f"the bot does not offer {op}")


class BotMenu:
    """What the bot's main menu shows this user (recorded when the chat was linked)."""

    name = "bot menu"

    def __init__(self, bot: BotFrontEnd) -> None:
        self.bot = bot

    def offers(self, op: Op) -> bool:
        return op in MENU_BUTTONS

    async def ask(self, op: Op) -> Answer:
        return Answer(MENU_BUTTONS[op] in self.bot.menu)


# -- USSD ---------------------------------------------------------------------------------------------
# op: the home menu's option and the first words of the screen it opens
USSD: dict[Op, tuple[str, str]] = {
    Op.pay: ("1. Request payment", "Customer phone number:"),
    Op.wallet: ("4. Wallet", "Wallet: KES"),
    Op.export: ("5. Export customers", "Email the customer list"),
}


class UssdFrontEnd:
    """The merchant menu behind the PIN, dialled through the Africa's Talking-style gateway. An option
    core refuses is not shown, and typing its number anyway is "Invalid choice."."""

    name = "ussd"

    def __init__(self, gateway: UssdGateway, phone: str) -> None:
        self.gateway = gateway
        self.phone = phone

    @classmethod
    async def registered(cls, gateway: UssdGateway, user: User) -> UssdFrontEnd:
        phone = merchant_phone()
        async with unit_of_work() as session:
            row = await session.get(User, user.id)
            assert row is not None
            await register_ussd(
                session, user=row, phone=Msisdn("254" + phone[1:]), pin_hash=await new_pin_hash(PIN)
            )
        return cls(gateway, phone)

    def offers(self, op: Op) -> bool:
        return op in USSD

    async def ask(self, op: Op) -> Answer:
        option, screen = USSD[op]
        s = self.gateway.dial(intl(self.phone))
        await s.start()
        home = await s.send(PIN)
        assert home.kind == "CON" and "1. Request payment" in home.text, home.text
        shown = option in home.text.split("\n")
        chosen = await s.send(option.split(".")[0])
        if not shown:
            assert chosen.text.startswith("Invalid choice."), (
                f"{option!r} is hidden but opens: {chosen.text!r}"
            )
            await s.abandon()
            return Answer(False)
        assert chosen.text.startswith(screen), f"{option!r} is shown but answers: {chosen.text!r}"
        if op is not Op.pay:
            await s.abandon()
            return ALLOWED
        # a payment all the way: the push is where core decides
        await s.send(PAY_TO)
        await s.send("10")
        end = await s.send("1")
        assert end.kind == "END", end.text
        return ALLOWED if end.text.startswith("Request sent") else Answer(False, end.text)


FrontEnd = ApiFrontEnd | PanelFrontEnd | BotFrontEnd | BotMenu | UssdFrontEnd


# -- comparing with core --------------------------------------------------------------------------------
async def ask_everyone(actor: Actor, front_ends: list[FrontEnd]) -> tuple[dict[tuple[str, Op], Answer], str]:
    """Every front end's answer to every operation it offers, and the matrix as a table."""
    answers = {(fe.name, op): await fe.ask(op) for op in Op for fe in front_ends if fe.offers(op)}
    names = [fe.name for fe in front_ends]
    word = {True: "yes", False: "no"}
    lines = [f"{'':34}{'core':>6}" + "".join(f"{n:>10}" for n in names)]
    for op in Op:
        cells = [word[answers[n, op].allowed] if (n, op) in answers else "–" for n in names]
        lines.append(
            f"{op.value:34}{word[actor.can(PERMISSION[op])]:>6}" + "".join(f"{c:>10}" for c in cells)
        )
    return answers, "\n".join(lines)


def disagreements(actor: Actor, answers: dict[tuple[str, Op], Answer]) -> list[str]:
    """Each cell where a front end's answer is not core's: allowed or refused, and a refusal in core's
    words. The API's actor is built from the login token without the business's name, so core names
    "the business" there (web/deps.py actor_of); either wording is core's."""

    def words(op: Op) -> set[str]:
        return {refusal(actor, op), refusal(replace(actor, tenant_name=None), op)}

    found = []
    for (name, op), answer in answers.items():
        core = actor.can(PERMISSION[op])
        if answer.allowed != core:
            verb = (
                "allows"
                if answer.allowed
                else "hides"
                if answer.said is None
                else f"refuses ({answer.said!r})"
            )
            found.append(f"{name} {verb} {op.value}; core says {'allowed' if core else 'refused'}")
        elif not answer.allowed and answer.said is not None and not any(w in answer.said for w in words(op)):
            found.append(f"{name} refuses {op.value} saying {answer.said!r}; core: {refusal(actor, op)!r}")
    return found


async def rows(tenant: Tenant) -> dict[str, int]:
    """What the writes among the operations leave behind, counted per business."""

    async def audited(action: str) -> int:
        query = select(func.count()).where(AuditLog.tenant_id == tenant.id, AuditLog.action == action)
        return int(await session.scalar(query) or 0)

    async with unit_of_work(readonly=True) as session:
        return {
            Op.pay: int(
                await session.scalar(select(func.count()).where(Payment.tenant_id == tenant.id)) or 0
            ),
            Op.alert_level: await audited("wallet.settings_changed"),
            Op.invite: await audited("staff.invited"),
            "invite codes": int(
                await session.scalar(
                    select(func.count()).where(
                        OneTimeCode.tenant_id == tenant.id, OneTimeCode.purpose == CodePurpose.staff_invite
                    )
                )
                or 0
            ),
            Op.api_key: await audited("apikey.created"),
        }


def rows_expected(answers: dict[tuple[str, Op], Answer]) -> dict[str, int]:
    """One row per front end that allowed the write (a menu only shows), none for a refusal."""

    def allowed(op: Op) -> int:
        return sum(a.allowed for (name, o), a in answers.items() if o is op and name != BotMenu.name)

    return {
        Op.pay: allowed(Op.pay),
        Op.alert_level: allowed(Op.alert_level),
        Op.invite: allowed(Op.invite),
        "invite codes": allowed(Op.invite),
        Op.api_key: allowed(Op.api_key),
    }


# -- the tests ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("role", "op", "allowed"), PINNED, ids=lambda v: getattr(v, "name", str(v)))
def test_the_permission_table_in_a_few_cells(role: Role | None, op: Op, allowed: bool) -> None:
    tenant = Tenant(id=uuid.uuid4(), name="Pinned Duka")
    if role is None:
        actor = read_only_admin(uuid.uuid4(), tenant)
    else:
        actor = Actor.for_user(user_id=uuid.uuid4(), tenant_id=tenant.id, role=role, via=Via.api)
    assert actor.can(PERMISSION[op]) is allowed


@pytest.mark.parametrize("role", [Role.owner, Role.manager, Role.cashier], ids=lambda r: r.value)
async def test_same_answer_in_api_panel_bot_and_ussd(server: LiveServer, role: Role) -> None:
    biz = await open_business(role)
    actor = business_actor(biz.user, biz.tenant)
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
        aclosing(await business_client(server.url, biz.user)) as panel_http,
        TelegramSimClient(server.telegram_url, BOT_TOKEN, timeout=15) as tg,
        UssdGateway(f"{server.url}/ussd", max_chars=160, timeout=10.0) as gateway,
    ):
        bot = await BotFrontEnd(tg).start(biz)
        front_ends: list[FrontEnd] = [
            await ApiFrontEnd.login(http, biz.user),
            await PanelFrontEnd(panel_http).start(),
            bot,
            BotMenu(bot),
            await UssdFrontEnd.registered(gateway, biz.user),
        ]
        answers, table = await ask_everyone(actor, front_ends)
    found = disagreements(actor, answers)
    assert not found, "\n".join([f"{role.value} of {biz.tenant.name}:", table, *found])
    # the pinned cells, in every front end too
    for pinned_role, op, allowed in PINNED:
        if pinned_role is role:
            assert {a.allowed for (_, o), a in answers.items() if o is op} == {allowed}, (op, table)
    # a refusal changed nothing; each front end that allowed a write made exactly its row
    assert await rows(biz.tenant) == rows_expected(answers), table


async def test_admin_viewing_read_only_in_the_panel(server: LiveServer) -> None:
    """A platform admin viewing a business (impersonation without write access) reads what its owner
    reads and changes nothing, as core's read-only impersonation says."""
    biz = await open_business(Role.owner)
    admin, email = await admin_client(server.url)
    async with aclosing(admin):
        overview = await admin.get("/admin")
        r = await admin.post(
            f"/admin/tenants/{biz.tenant.id}/impersonate", data={"csrf_token": csrf_of(overview.text)}
        )
        assert (r.status_code, r.headers["location"]) == (303, "/app")
        async with unit_of_work(readonly=True) as session:
            admin_id = await session.scalar(select(User.id).where(User.email == email))
        actor = read_only_admin(admin_id, biz.tenant)
        answers, table = await ask_everyone(actor, [await PanelFrontEnd(admin).start()])
    found = disagreements(actor, answers)
    assert not found, "\n".join([f"admin viewing {biz.tenant.name} read-only:", table, *found])
    for pinned_role, op, allowed in PINNED:
        if pinned_role is None:
            assert answers["panel", op].allowed is allowed, (op, table)
    assert await rows(biz.tenant) == rows_expected(answers) == dict.fromkeys(rows_expected(answers), 0)
