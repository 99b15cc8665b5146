"""Handling one Telegram update, without the Bot API round trips, at N concurrent chats. Run by hand:

    .venv/bin/python bench/bot_updates.py --chats 50 --rounds 20              # SQLite temp file
    .venv/bin/python bench/bot_updates.py --chats 50 --rounds 20 --postgres   # fresh Postgres database

Setup (untimed): a fresh database, migrated; ``--chats`` active businesses made through the real
services (``tests.support.factories.make_tenant``: sign-up, verified production channel), each owner's
account linked to its own fake Telegram user (``attach_owner``), and ``--history`` payments per business
with the customer book they imply (bulk rows in the channel's mode, live, the book and figures /home
and /pay read).

Ours: the product's Dispatcher, ``bots.app.build_dispatcher(settings)`` (ActorMiddleware, every router,
the error handlers, MemoryStorage FSM as without ``REDIS_URL``), and the product's Bot,
``bots.app.build_bot(settings)``, whose session is swapped for ``CannedSession``: it serialises every call
as ``AiohttpSession`` does (``prepare_value`` on each field) and parses a canned successful answer
through the real ``check_response`` (a Message for sendMessage/editMessageText, ``true`` for the rest),
but sends nothing. That is "excluding Bot API round trips": the network wait is left out, the
client-side work of each call is not. It yields to the loop once per call (``asyncio.sleep(0)``), where a
real request would wait for the network, so the chats interleave as they would. Every chat sends, per
round, sequentially:

    /start   menu: the actor (user + tenant) read by ActorMiddleware, FSM cleared
    /pay     actor, FSM set, recent-customers query, keyboard of 5 customers
    phone    actor, customer lookup, FSM data + state
    amount   actor, amount parsed, FSM data, asks for the name
    /cancel  actor, FSM cleared
    /home    actor, dashboard: payment summary, tenant, wallet view, commission, recent customers

and the ``--chats`` chats run concurrently (``asyncio.gather``) on one event loop. Each update is
built as the webhook route builds it (``Update.model_validate(..., context={"bot": bot})``, untimed)
and timed with ``perf_counter`` around ``await dp.feed_update(bot, update)``; after each one the bench
checks (untimed) that the chat got exactly the expected reply, so an error path is never what is
measured. One untimed warm-up round goes first (connections, statement caches).

Baseline, in the same run, on the same loop, with the same Bot and CannedSession: a bare
``Dispatcher(storage=MemoryStorage())`` with one router whose only handler echoes the text back
(one sendMessage per update, as ours sends), no middleware, no database, fed the same updates at the
same concurrency. The ratios (ours / baseline) are what ActorMiddleware + the database + the FSM
steps + our filters and keyboards cost over bare aiogram dispatching.

Printed: per update kind and overall, n, p50/p90/p99/max latency (ms), database statements and
transactions per update (cursor executions other than BEGIN/PRAGMA, and transactions begun, counted
per update through a context variable), then updates/s (all timed updates over the wall time of the
timed phase), CPU ms per update of this process (event loop plus aiosqlite's and ``asyncio.to_thread``'s
threads) and, with ``--postgres``, of the Postgres backends serving the bench's database, and the
ratios. A note says when other processes kept the machine busy during a timed phase. At 50
concurrent chats on one loop, latency is mostly queueing behind the other chats' work: p50 is about
chats x CPU per update.

Options: ``--history`` (payments per business, 200), ``--pool-size`` (``DB_POOL_SIZE``), ``--loop``
(auto = uvloop when installed, as uvicorn picks for ``lipapush web``), ``--log-level INFO`` (logging
set up as ``lipapush web`` does; aiogram then logs a line per update to stderr, as production's
default level does; without it logging is not set up), ``--pg-server``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import gc
import itertools
import math
import os
import platform
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncGenerator, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from html import escape
from pathlib import Path
from typing import Any

# Runnable as a plain script from anywhere in the checkout, installed package or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiogram
from aiogram import Bot, Dispatcher, Router
from aiogram.client.session.base import BaseSession
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import Message, Update
from sqlalchemy import event, insert

from bots import texts
from bots.app import build_bot, build_dispatcher
from core.config import Settings, load_settings
from core.db import utcnow
from core.migrate import upgrade
from core.runtime import configure, runtime, unit_of_work

BOT_TOKEN = "123456:BENCH"
BOT_USER = {"id": 123456, "is_bot": True, "first_name": "Lipapush", "username": "lipapush_bench_bot"}
FIRST_TG_ID = 910_000_001

# --------------------------------------------------------------------------------------------------
# The Bot API stand-in


class CannedSession(BaseSession):
    """A session that answers every Bot API call with a canned success, without any I/O.

    The request is serialised as AiohttpSession.build_form_data does and the answer goes through the
    real ``check_response`` (JSON decode + pydantic validation into the method's result type), so the
    client-side cost of a call is paid as in production; only the HTTP round trip is missing.
    Unknown methods fail loudly: the bench must know every call the bot makes.
    """

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()
        self.replies: dict[int, list[str]] = defaultdict(list)  # chat id -> texts sent, in order
        self._message_ids = itertools.count(1_000_000)

    async def close(self) -> None:
        return None

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,  # noqa: ASYNC109
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        raise NotImplementedError("the bench never downloads files")
        yield b""  # an async generator, as the base class declares

    async def make_request(  # the signature is BaseSession's
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,  # noqa: ASYNC109
    ) -> TelegramType:
        name = method.__api_method__
        # A real request waits for the network here, letting the other chats run: yield once, so the
        # chats interleave as they would (without it the baseline would never yield at all).
        await asyncio.sleep(0)
        files: dict[str, Any] = {}
        form = {
            key: prepared
            for key, value in method.model_dump(warnings=False).items()
            if (prepared := self.prepare_value(value, bot=bot, files=files))
        }
        self.calls[name] += 1
        result: object
        if name in ("sendMessage", "editMessageText"):
            chat_id = int(form["chat_id"])
            text = str(form.get("text", ""))
            self.replies[chat_id].append(text)
            result = {
                "message_id": int(form.get("message_id") or next(self._message_ids)),
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private"},
                "from": BOT_USER,
                "text": text,
            }
        elif name in ("answerCallbackQuery", "deleteMessage", "setMyCommands", "deleteWebhook"):
            result = True
        elif name == "getMe":
            result = BOT_USER
        else:
            raise RuntimeError(f"the bench has no canned answer for {name}")
        content = self.json_dumps({"ok": True, "result": result})
        response = self.check_response(bot=bot, method=method, status_code=200, content=content)
        return response.result  # type: ignore[return-value]


def make_bot(settings: Settings) -> Bot:
    """The product's Bot (token, HTML default parse mode), with the network session swapped out."""
    bot = build_bot(settings)
    bot.session = CannedSession()  # the AiohttpSession it replaces never opened a connection
    return bot


# --------------------------------------------------------------------------------------------------
# Database counters: statements and transactions per update, attributed through a context variable
# (SQLAlchemy runs its sync core in a greenlet that inherits the caller's context), and connections
# the pools open.

_current: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("bench_db_counter", default=None)
_connections_opened = [0]


def instrument_database() -> None:
    db = runtime().db
    # One listener per pool: on Postgres the read-only engine is the writer with other execution options
    # (the same pool and the same events), so listening on both counted every read-only statement twice.
    # The writer must be the one kept: listeners on it hear its option engines too, not the reverse.
    engines: dict[int, Any] = {}
    for e in db.engines():
        engines.setdefault(id(e.sync_engine.pool), e)
    for engine in engines.values():

        @event.listens_for(engine.sync_engine, "before_cursor_execute")
        def _stmt(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            box = _current.get()
            if box is not None and not statement.lstrip()[:6].upper().startswith(("BEGIN", "PRAGMA")):
                box[0] += 1

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(conn: Any) -> None:
            box = _current.get()
            if box is not None:
                box[1] += 1

        @event.listens_for(engine.sync_engine.pool, "connect")
        def _connect(*_: Any) -> None:
            _connections_opened[0] += 1


# --------------------------------------------------------------------------------------------------
# The conversation


@dataclass
class Chat:
    tg_id: int
    business: str
    phone_text: str  # a number that is not in this business's customer book


@dataclass
class Step:
    kind: str
    text: Callable[[Chat], str]
    expect: Callable[[Chat, str], bool]


FLOW = [
    Step("start", lambda c: "/start", lambda c, r: r == texts.menu(c.business, "active")),
    Step("pay", lambda c: "/pay", lambda c, r: r == texts.PAY_PHONE),
    Step("phone", lambda c: c.phone_text, lambda c, r: r == texts.PAY_AMOUNT),
    Step("amount", lambda c: "1,500", lambda c, r: r == texts.PAY_NAME),
    Step("cancel", lambda c: "/cancel", lambda c, r: r == texts.CANCELLED),
    Step("home", lambda c: "/home", lambda c, r: r.startswith(f"🏠 <b>{escape(c.business)}</b>\n")),
]
KINDS = [s.kind for s in FLOW]

_update_ids = itertools.count(1)
_message_ids = itertools.count(1)


def make_update(bot: Bot, chat: Chat, text: str) -> Update:
    user = {"id": chat.tg_id, "is_bot": False, "first_name": "Owner", "language_code": "en"}
    message: dict[str, object] = {
        "message_id": next(_message_ids),
        "date": int(time.time()),
        "chat": {"id": chat.tg_id, "type": "private", "first_name": "Owner"},
        "from": user,
        "text": text,
    }
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    return Update.model_validate({"update_id": next(_update_ids), "message": message}, context={"bot": bot})


@dataclass
class Sample:
    kind: str
    seconds: float
    statements: int
    transactions: int


@dataclass
class Phase:
    samples: list[Sample] = field(default_factory=list)
    wall: float = 0.0
    cpu: float = 0.0  # this process (the event loop plus aiosqlite's and asyncio.to_thread's threads)
    db_cpu: float = 0.0  # the Postgres backends serving this database
    db_cpu_complete: bool = True  # False when some of them exited during the phase (their CPU is lost)
    machine_cpu: float = 0.0  # every process on the machine
    connections: int = 0  # database connections the pools opened during the phase


@dataclass
class Snapshot:
    cpu: float
    backends: dict[int, float]
    machine: float
    connections: int


class CpuMeter:
    """CPU seconds of this process, of the Postgres backends of the bench's database (their process
    title names it) and of the whole machine, so a busy machine shows up in the report instead of
    silently lowering the rates."""

    def __init__(self, db_name: str | None) -> None:
        self.db_name = db_name

    def snapshot(self) -> Snapshot:
        import psutil

        backends: dict[int, float] = {}
        if self.db_name:
            for proc in psutil.process_iter(["cmdline"]):
                title = (proc.info["cmdline"] or [""])[0]
                if title.startswith("postgres:") and f" {self.db_name} " in f" {title} ":
                    with contextlib.suppress(psutil.Error):
                        t = proc.cpu_times()
                        backends[proc.pid] = t.user + t.system
        m = psutil.cpu_times()
        machine = m.user + m.nice + m.system + getattr(m, "irq", 0.0) + getattr(m, "softirq", 0.0)
        return Snapshot(time.process_time(), backends, machine, _connections_opened[0])

    @staticmethod
    def into(phase: Phase, before: Snapshot, after: Snapshot) -> None:
        phase.cpu = after.cpu - before.cpu
        phase.db_cpu = sum(t - before.backends.get(pid, 0.0) for pid, t in after.backends.items())
        phase.db_cpu_complete = before.backends.keys() <= after.backends.keys()
        phase.machine_cpu = after.machine - before.machine
        phase.connections = after.connections - before.connections


async def drive(
    dp: Dispatcher,
    bot: Bot,
    chats: list[Chat],
    rounds: int,
    check: Callable[[Step, Chat, str], bool],
    meter: CpuMeter,
) -> Phase:
    """Every chat sends rounds x FLOW sequentially; the chats run concurrently."""
    session = bot.session
    assert isinstance(session, CannedSession)
    phase = Phase()

    async def one_chat(chat: Chat) -> None:
        for _ in range(rounds):
            for step in FLOW:
                update = make_update(bot, chat, step.text(chat))
                box = [0, 0]
                token = _current.set(box)
                start = time.perf_counter()
                try:
                    await dp.feed_update(bot, update)
                finally:
                    elapsed = time.perf_counter() - start
                    _current.reset(token)
                replies = session.replies.pop(chat.tg_id, [])
                if len(replies) != 1 or not check(step, chat, replies[0]):
                    raise AssertionError(f"chat {chat.tg_id}, {step.kind}: unexpected replies {replies!r}")
                phase.samples.append(Sample(step.kind, elapsed, box[0], box[1]))

    gc.collect()
    before = meter.snapshot()
    wall0 = time.perf_counter()
    await asyncio.gather(*(one_chat(c) for c in chats))
    phase.wall = time.perf_counter() - wall0
    meter.into(phase, before, meter.snapshot())
    return phase


def baseline_dispatcher() -> Dispatcher:
    router = Router(name="echo")

    @router.message()
    async def echo(message: Message) -> None:
        await message.answer(message.text or "")

    dp = Dispatcher(storage=MemoryStorage())
    dp.include_router(router)
    return dp


# --------------------------------------------------------------------------------------------------
# Setup


async def seed(n_chats: int, history: int) -> list[Chat]:
    from core.auth.models import User
    from core.auth.telegram import attach_owner
    from core.customers.models import Customer
    from core.payments.models import Payment, PaymentSource, PaymentStatus
    from core.tenants.models import Environment
    from core.tenants.service import tenants
    from tests.support.factories import make_tenant

    rnd = random.Random(254)
    statuses = [PaymentStatus.success] * 6 + [
        PaymentStatus.failed,
        PaymentStatus.cancelled,
        PaymentStatus.timeout,
        PaymentStatus.pending,
    ]
    chats = []
    now = utcnow()
    for i in range(n_chats):
        name = f"Duka la Mama {i + 1}"
        tenant, owner = await make_tenant(
            name=name, phone=f"07{20_000_000 + i:08d}", environment=Environment.production
        )
        tg_id = FIRST_TG_ID + i
        async with unit_of_work() as session:
            user = await session.get(User, owner.id)
            assert user is not None
            await attach_owner(session, user=user, telegram_user_id=tg_id)
            channel = await tenants.get_channel(session, tenant.id)
            assert channel is not None
            if history:
                # ~4 payments per customer; customers' totals are what their payments add up to
                phones = [f"25472{i:03d}{j:04d}" for j in range(max(1, history // 4))]
                payments: list[dict[str, object]] = []
                book: dict[str, dict[str, Any]] = {}
                for k in range(history):
                    phone = rnd.choice(phones)
                    status = rnd.choice(statuses)
                    amount = rnd.randrange(50, 20_000)
                    at = now - timedelta(minutes=(history - k) * 17)
                    payments.append(
                        {
                            "id": uuid.uuid4(),
                            "tenant_id": tenant.id,
                            "channel_id": channel.id,
                            "mode": channel.mode,
                            "initiated_by_id": owner.id,
                            "source": PaymentSource.telegram,
                            "status": status,
                            "amount": amount,
                            "phone": phone,
                            "account_reference": "BENCH",
                            "description": "Bench",
                            "commission_bps": 100,
                            "commission_cents": amount,
                            "reserved_cents": 0,
                            "created_at": at,
                            "updated_at": at,
                            "completed_at": None if status is PaymentStatus.pending else at,
                            "query_attempts": 0,
                        }
                    )
                    row = book.setdefault(
                        phone,
                        {
                            "tenant_id": tenant.id,
                            "mode": channel.mode,
                            "phone": phone,
                            "name": f"Customer {phone[-4:]}" if rnd.random() < 0.7 else None,
                            "requested_count": 0,
                            "requested_total": 0,
                            "paid_count": 0,
                            "paid_total": 0,
                            "first_seen_at": at,
                            "last_seen_at": at,
                            "last_paid_at": None,
                        },
                    )
                    row["requested_count"] += 1
                    row["requested_total"] += amount
                    row["last_seen_at"] = at
                    if status is PaymentStatus.success:
                        row["paid_count"] += 1
                        row["paid_total"] += amount
                        row["last_paid_at"] = at
                await session.execute(insert(Payment), payments)
                await session.execute(insert(Customer), list(book.values()))
        chats.append(Chat(tg_id=tg_id, business=name, phone_text=f"0711 {100_000 + i:06d}"))
    return chats


@dataclass
class Database:
    url: str
    name: str | None  # the Postgres database, None for SQLite
    cleanup: Callable[[], Coroutine[Any, Any, None]]


async def create_database(postgres: bool, server: str) -> Database:
    if postgres:
        import asyncpg

        name = f"lipapush_bench_bot_{uuid.uuid4().hex[:8]}"

        async def admin(sql: str) -> None:
            conn = await asyncpg.connect(f"{server}/postgres")
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        await admin(f'CREATE DATABASE "{name}"')

        async def drop() -> None:
            await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        return Database(f"{server.replace('postgresql://', 'postgresql+asyncpg://')}/{name}", name, drop)
    tmp = tempfile.mkdtemp(prefix="lipapush-bench-bot-")

    async def remove() -> None:
        shutil.rmtree(tmp, ignore_errors=True)

    return Database(f"sqlite+aiosqlite:///{tmp}/bench.db", None, remove)


def warn_if_busy() -> None:
    import psutil

    busy = psutil.cpu_percent(interval=1.0)
    if busy > 25:
        print(
            f"warning: the machine is {busy:.0f}% busy before the run; latencies and rates will be "
            "lower than on an idle machine (the ratios and CPU per update suffer less)"
        )


# --------------------------------------------------------------------------------------------------
# Report


def pct(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return sorted_values[max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))]


@dataclass
class Row:
    label: str
    n: int
    p50: float
    p90: float
    p99: float
    max: float
    statements: float
    transactions: float


def summarise(label: str, samples: list[Sample]) -> Row:
    times = sorted(s.seconds * 1000 for s in samples)
    n = len(samples)
    return Row(
        label,
        n,
        pct(times, 0.50),
        pct(times, 0.90),
        pct(times, 0.99),
        times[-1],
        sum(s.statements for s in samples) / n,
        sum(s.transactions for s in samples) / n,
    )


def report(ours: Phase, base: Phase, postgres: bool) -> None:
    header = (
        f"{'':<9} {'update':<7} {'n':>6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'stmts':>6} {'tx':>4}"
    )
    print(header)
    print("-" * len(header))

    def line(side: str, row: Row, db: bool = True) -> None:
        counts = f"{row.statements:>6.1f} {row.transactions:>4.1f}" if db else ""
        print(
            f"{side:<9} {row.label:<7} {row.n:>6} {row.p50:>8.2f} {row.p90:>8.2f} {row.p99:>8.2f} "
            f"{row.max:>8.2f} {counts}".rstrip()
        )

    by_kind: dict[str, list[Sample]] = defaultdict(list)
    for s in ours.samples:
        by_kind[s.kind].append(s)
    for i, kind in enumerate(KINDS):
        line("ours" if i == 0 else "", summarise(kind, by_kind[kind]))
    ours_all = summarise("all", ours.samples)
    line("", ours_all)
    base_all = summarise("all", base.samples)
    line("baseline", base_all, db=False)
    print()

    def per_update(p: Phase, seconds: float) -> float:
        return 1000 * seconds / len(p.samples)

    o_rate, b_rate = len(ours.samples) / ours.wall, len(base.samples) / base.wall
    o_cpu, b_cpu = per_update(ours, ours.cpu), per_update(base, base.cpu)
    print(f"{'':<30} {'ours':>9} {'baseline':>9}")
    print(f"{'updates/s':<30} {o_rate:>9.0f} {b_rate:>9.0f}")
    print(f"{'CPU ms/update, this process':<30} {o_cpu:>9.3f} {b_cpu:>9.3f}")
    if postgres:
        db_cpu = f"{per_update(ours, ours.db_cpu):>9.3f}" + ("" if ours.db_cpu_complete else "+")
        print(f"{'CPU ms/update, its PG backends':<30} {db_cpu:<9} {0:>9.3f}")
    print(f"{'DB connections opened':<30} {ours.connections:>9} {base.connections:>9}")
    if postgres and not ours.db_cpu_complete:
        print(
            "+ backends exited during the phase (the pool closed overflow connections): their CPU is "
            "missing, so this is a lower bound"
        )
    cpus = os.cpu_count() or 1
    for label, p in (("ours", ours), ("baseline", base)):
        other = max(0.0, p.machine_cpu - p.cpu - p.db_cpu)
        if other > 0.1 * p.wall:
            print(
                f"note: other processes{'' if p.db_cpu_complete else ' (and exited PG backends)'} used "
                f"{other / p.wall:.2f} of the machine's {cpus} CPUs during the {label} phase: "
                "its rates and latencies are lower than on an idle machine"
            )
    print()
    print(
        f"ratios ours/baseline: p50 {ours_all.p50 / base_all.p50:.1f}x, "
        f"p90 {ours_all.p90 / base_all.p90:.1f}x, p99 {ours_all.p99 / base_all.p99:.1f}x, "
        f"updates/s {o_rate / b_rate:.2f}x, CPU/update (this process) {o_cpu / b_cpu:.1f}x"
    )


# --------------------------------------------------------------------------------------------------


async def run(args: argparse.Namespace, settings: Settings, db_name: str | None) -> tuple[Phase, Phase]:
    rt = configure(settings)
    try:
        t0 = time.perf_counter()
        chats = await seed(args.chats, args.history)
        print(
            f"seeded {len(chats)} businesses (+{args.history} payments each) "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        instrument_database()
        bot = make_bot(settings)
        ours_dp = build_dispatcher(settings)
        base_dp = baseline_dispatcher()
        meter = CpuMeter(db_name)

        def check_ours(step: Step, chat: Chat, reply: str) -> bool:
            return step.expect(chat, reply)

        def check_echo(step: Step, chat: Chat, reply: str) -> bool:
            return reply == step.text(chat)

        # untimed warm-up: pool connections, compiled-statement caches, lazily built pydantic models
        await drive(ours_dp, bot, chats, 1, check_ours, meter)
        await drive(base_dp, bot, chats, 1, check_echo, meter)
        warn_if_busy()
        base = await drive(base_dp, bot, chats, args.rounds, check_echo, meter)
        ours = await drive(ours_dp, bot, chats, args.rounds, check_ours, meter)
        session = bot.session
        assert isinstance(session, CannedSession)
        print(f"Bot API calls answered by CannedSession (warm-up included): {dict(session.calls)}")
        return ours, base
    finally:
        await rt.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chats", type=int, default=50, help="concurrent chats, one business each (50)")
    parser.add_argument("--rounds", type=int, default=20, help="rounds of the 6-update flow per chat (20)")
    parser.add_argument(
        "--history", type=int, default=200, help="payments seeded per business, ~1 customer per 4 (200)"
    )
    parser.add_argument("--postgres", action="store_true", help="a fresh Postgres database (default SQLite)")
    parser.add_argument("--pg-server", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--pool-size", type=int, help="DB_POOL_SIZE (Postgres; default: the product's)")
    parser.add_argument(
        "--loop",
        choices=["auto", "asyncio", "uvloop"],
        default="auto",
        help="event loop; auto = uvloop when installed, as uvicorn (the web process running the bot) does",
    )
    parser.add_argument(
        "--log-level",
        help="set up logging as `lipapush web` does (web.logs.setup_logging), e.g. INFO: aiogram then logs "
        "one line per update to stderr, as in production; default: logging not set up (WARNING)",
    )
    args = parser.parse_args()

    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    loop_name = "asyncio"
    if args.loop != "asyncio":
        try:
            import uvloop

            loop_factory, loop_name = uvloop.new_event_loop, "uvloop"
        except ImportError:
            if args.loop == "uvloop":
                raise

    def run_in_loop(coro: Coroutine[Any, Any, Any]) -> Any:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(coro)

    db = run_in_loop(create_database(args.postgres, args.pg_server))
    try:
        upgrade(db.url)
        if args.log_level:
            from web.logs import setup_logging

            setup_logging(args.log_level)
        overrides: dict[str, object] = {
            "DATABASE_URL": db.url,
            "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
            "REDIS_URL": None,
            "LOG_LEVEL": args.log_level or "WARNING",
        }
        if args.pool_size:
            overrides["DB_POOL_SIZE"] = args.pool_size
        settings = load_settings(**overrides)
        backend = (
            f"postgres (pool {settings.DB_POOL_SIZE}+{settings.DB_MAX_OVERFLOW})"
            if args.postgres
            else "sqlite"
        )
        print(
            f"bot_updates: {args.chats} concurrent chats x {args.rounds} rounds x {len(FLOW)} updates = "
            f"{args.chats * args.rounds * len(FLOW)} timed updates per side; {backend}, {loop_name}, "
            f"python {platform.python_version()}, aiogram {aiogram.__version__}, {os.cpu_count()} CPUs"
        )
        ours, base = run_in_loop(run(args, settings, db.name))
    finally:
        run_in_loop(db.cleanup())
    print()
    report(ours, base, args.postgres)


if __name__ == "__main__":
    main()
