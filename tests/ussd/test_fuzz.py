"""USSD fuzz: random forms against the live POST /ussd, as a broken or hostile gateway would send them.

Every answer must be what Africa's Talking can show: HTTP 200, `CON ` or `END `, at most 160 characters
(ussd.screens.MAX_SCREEN), printable ASCII; and nothing may fail inside (the router turns an exception
into a polite END, so the log is checked too). The forms mix honest walks of the merchant, payer and
WiFi menus (sessions continued hop after hop, as the gateway does) with garbage in every field: NULs,
unicode, `*` chains, over-long values, invalid UTF-8, empty fields.

The seed is printed; rerun one with LIPAPUSH_USSD_FUZZ_SEED=<seed> (LIPAPUSH_USSD_FUZZ_CASES for more).
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlencode

import httpx
import pytest

from core.auth.models import Role
from core.hotspot.models import Plan, PlanKind
from core.hotspot.routers import routers
from core.hotspot.schemas import RouterIn
from core.runtime import runtime, unit_of_work
from core.tenants.models import Tenant
from sim.routeros import RouterSim
from tests.conftest import LiveServer
from tests.support.factories import make_provider, make_tenant
from tests.ussd.conftest import PIN, Merchant, make_merchant

CASES = int(os.environ.get("LIPAPUSH_USSD_FUZZ_CASES", "1000"))
MAX_SCREEN = 160

GARBAGE_CHARS = (
    "abcXYZ#+-.,;:!?/\\'\"<>&%=~`|^ \t\r\n"
    "éñüßçøå"  # Latin
    "Ωπλ"  # Greek
    "жщы"  # Cyrillic
    "٠١٢٣٧"  # Arabic-Indic digits: str.isdigit() says yes
    "０１７"  # full-width digits
    "中文字"  # CJK
    "😀🇰🇪👍🏽"  # emoji, a flag, a skin tone
    "\u0301\u200b\u200d\ufeff\u2028\u00a0"  # combining accent, zero widths, BOM, line separator, nbsp
    "\x00\x01\x07\x1b\x7f"  # controls, NUL
    "\ud800\udfff"  # lone surrogates: sent as invalid UTF-8
)


@dataclass
class World:
    merchants: list[Merchant]
    numbers: list[str]  # business numbers: a business, a hotspot provider, a long-named one

    @property
    def merchant_suffixes(self) -> tuple[str, ...]:
        return tuple(m.phone[1:] for m in self.merchants)


@dataclass
class Open:
    session_id: str
    phone: str
    tokens: list[str] = field(default_factory=list)


def garbage(rng: random.Random, longest: int = 40) -> str:
    return "".join(rng.choice(GARBAGE_CHARS) for _ in range(rng.randint(0, longest)))


def token(rng: random.Random, world: World) -> str:
    roll = rng.random()
    if roll < 0.36:
        return str(rng.randint(1, 9))
    if roll < 0.44:
        return rng.choice(["0", "00"])
    if roll < 0.54:
        return PIN
    if roll < 0.56:
        return rng.choice(["0000", "1234", "482", "48266"])
    if roll < 0.66:
        return rng.choice([*world.numbers, "4040", "999999999", "0", "12ab"])
    if roll < 0.76:
        return rng.choice(["1", "10", "250", "250000", "250001", "0", "-5", "1.5", "1,000", "9" * 12])
    if roll < 0.81:
        return rng.choice(["0722000111", "+254722000111", "0112345678", "12345", "07٢٢٠٠٠١١١"])
    if roll < 0.84:
        return rng.choice([PIN, "5829", "0000", "1111", "58a9"])
    if roll < 0.97:
        return garbage(rng)
    return garbage(rng, longest=400) + "\x00" * rng.randint(0, 2)


def phone(rng: random.Random, world: World) -> str:
    roll = rng.random()
    if roll < 0.4:
        m = rng.choice(world.merchants)
        return rng.choice([m.phone, "+254" + m.phone[1:], "254" + m.phone[1:]])
    if roll < 0.75:
        return "+2547" + "".join(rng.choice("0123456789") for _ in range(8))
    return rng.choice(
        [
            "",
            "12345",
            "+15555550100",
            "+254" + "7" * 20,
            "07٢٢٠٠٠١١١",
            "+254 722 000 111",
            "0722\x00000111",
            garbage(rng, 30),
            "9" * 200,
        ]
    )


def session_id(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.9:
        return "ATUid_" + rng.randbytes(rng.randint(4, 16)).hex()
    return rng.choice(["", "\x00", "x" * 129, "x" * 128, "ATUid_é😀", garbage(rng, 20), " "])


def text_of(rng: random.Random, tokens: list[str]) -> str:
    text = "*".join(tokens)
    roll = rng.random()
    if roll < 0.04:
        return text + "*"
    if roll < 0.06:
        return "*" + text
    if roll < 0.08:
        return text.replace("*", "**", 1)
    return text


def form(rng: random.Random, world: World, opened: list[Open]) -> tuple[dict[str, str], Open]:
    """One request's fields, and the session it continues or opens."""
    code = "*384*123#" if rng.random() < 0.93 else rng.choice(["", "*384*123#\x00", garbage(rng, 70)])
    if opened and rng.random() < 0.55:
        walk = rng.choice(opened)
        if rng.random() < 0.1:
            tokens = list(walk.tokens)  # the gateway repeats a hop
        else:
            tokens = [*walk.tokens, *(token(rng, world) for _ in range(rng.choice([1, 1, 1, 2, 3])))]
        walk.tokens = tokens
        fields = {"sessionId": walk.session_id, "phoneNumber": walk.phone, "text": text_of(rng, tokens)}
    else:
        walk = Open(session_id=session_id(rng), phone=phone(rng, world))
        walk.tokens = [token(rng, world) for _ in range(rng.choice([0, 0, 1, 2, 3, 5, 8, 45]))]
        if walk.tokens and walk.phone.endswith(world.merchant_suffixes) and rng.random() < 0.9:
            walk.tokens[0] = PIN  # mostly past the PIN: wrong ones lock the phone, and the menu is behind it
        text = text_of(rng, walk.tokens) if rng.random() < 0.9 else garbage(rng, rng.choice([10, 2500]))
        fields = {"sessionId": walk.session_id, "phoneNumber": walk.phone, "text": text}
    fields.update(serviceCode=code, networkCode=rng.choice(["63902", "63903", ""]))
    for name in list(fields):
        if rng.random() < 0.01:
            del fields[name]  # a field missing altogether
    return fields, walk


def encode(fields: dict[str, str]) -> bytes:
    """Form-encoded as a gateway would, except that lone surrogates go out as the (invalid UTF-8)
    bytes they would be, instead of failing in the client."""
    return urlencode(fields, encoding="utf-8", errors="surrogatepass").encode("ascii")


def problems(status: int, body: str) -> list[str]:
    found = []
    if status != 200:
        found.append(f"status {status}")
    if not body.startswith(("CON ", "END ")):
        found.append("not CON/END")
    if len(body) > MAX_SCREEN:
        found.append(f"{len(body)} characters")
    if not body.isascii():
        found.append("not ASCII")
    return found


@pytest.fixture
async def router_sim() -> AsyncIterator[RouterSim]:
    async with RouterSim(username="api", password="router-pw") as s:
        yield s


async def make_world(router_sim: RouterSim) -> World:
    business, _ = await make_tenant(name="Kibanda Kwa Njeri")
    long_name, _ = await make_tenant(name="Café Ñandú 😀 " + "Wholesale and Retail Supplies " * 3)
    provider, owner = await make_provider(name="Kangemi WiFi")
    async with unit_of_work() as session:
        await routers.add(
            session,
            tenant_id=provider.id,
            data=RouterIn(
                name="Gate A", host="127.0.0.1", port=router_sim.port, username="api", password="router-pw"
            ),
            box=runtime().secrets,
            by=owner.id,
        )
        session.add(
            Plan(tenant_id=provider.id, name="1 hour", kind=PlanKind.time, price=20, validity_minutes=60)
        )
    merchants = [
        await make_merchant(name="Mama Mboga " + "x" * 60),
        await make_merchant(role=Role.cashier),
        await make_merchant(role=Role.manager),
        await make_merchant(name="Duka la Ω"),
        await make_merchant(name="Zuri Salon"),
    ]
    tenants: list[Tenant] = [business, long_name, provider]
    return World(merchants=merchants, numbers=[str(t.business_number) for t in tenants])


async def test_random_forms_always_get_a_screen_the_gateway_can_show(
    server: LiveServer, router_sim: RouterSim, caplog: pytest.LogCaptureFixture
) -> None:
    seed = int(os.environ.get("LIPAPUSH_USSD_FUZZ_SEED") or random.SystemRandom().randrange(10**9))
    print(f"USSD fuzz seed {seed} ({CASES} cases): rerun with LIPAPUSH_USSD_FUZZ_SEED={seed}")
    rng = random.Random(seed)
    world = await make_world(router_sim)
    opened: list[Open] = []
    failures: list[str] = []
    screens: set[str] = set()
    caplog.set_level(logging.WARNING)
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        # One hop at a time: the server runs in this process, so parallel hops would buy nothing, and a
        # seed replays the same walk (only the tenants' numbers and phones differ from run to run).
        for case in range(CASES):
            fields, walk = form(rng, world, opened)
            r = await http.post(
                "/ussd", content=encode(fields), headers={"Content-Type": "application/x-www-form-urlencoded"}
            )
            found = problems(r.status_code, r.text)
            screens.add(r.text.split("\n")[0][:40])
            if found:
                sent = repr(fields)
                sent = sent if len(sent) < 400 else sent[:400] + "..."
                answer = f"{r.status_code} {r.text[:200]!r}"
                failures.append(f"case {case}: {', '.join(found)}: {sent} -> {answer}")
            if r.text.startswith("CON ") and walk not in opened:
                opened.append(walk)
            if r.text.startswith("END ") and walk in opened:
                opened.remove(walk)
            del opened[:-30]
    print(f"USSD fuzz: {CASES} cases in {time.monotonic() - started:.1f} s, {len(screens)} distinct screens")
    print("\n".join(sorted(screens)) if os.environ.get("LIPAPUSH_USSD_FUZZ_SCREENS") else "")
    errors = [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.levelno >= logging.ERROR and r.name.startswith(("ussd", "lipapush", "core", "web"))
    ]
    assert failures == [], f"seed {seed}:\n" + "\n".join(failures[:20])
    assert errors == [], f"seed {seed}:\n" + "\n".join(errors[:20])
