"""What does a business's export cost on top of bare openpyxl? Run by hand:

    python bench/export_xlsx_raw.py --rows 100000 --repeat 3
    python bench/export_xlsx_raw.py --rows 100000 --repeat 3 --postgres postgresql://postgres@127.0.0.1:5432

Each variant runs in a fresh subprocess, so its peak RSS is its own and not a high-water mark left
by an earlier variant. Each measurement starts once the variant is ready to write its first row:
imports done and, for the variants that read a database, the runtime configured, the ORM's mappers
configured and a pooled connection opened (what a web or worker process already has when someone
asks for an export). The RSS growth over that point is what the export holds while it writes.
Variants, each with the baseline it is compared with:

* ``baseline``: openpyxl write-only, the customer book's seven columns and rows, no styling, no
  checks, no thread; the floor.
* ``build_xlsx`` (vs ``baseline``): ``core.exports.xlsx.build_xlsx`` with the customer book's
  columns, fed batches of 1000 from an async generator, as the web endpoint feeds it from the database.
* ``customer_book`` (vs ``baseline``): the real export path end to end:
  ``core.exports.books.customer_book`` reading the same rows (the business's live book) from a seeded
  database (SQLite by default, ``--postgres URL`` for a Postgres server) and writing the workbook, in
  the list's default order (``--customer-order first_seen``: oldest first, which no index answers).
* ``baseline_transactions``: bare openpyxl write-only, the transaction list's ten columns and rows
  (statuses and sources as their text), as ``baseline``.
* ``transaction_list`` (vs ``baseline_transactions``): ``core.exports.books.transaction_list`` end to
  end, every payment of the business from the seeded database.

``--smoke`` (for bench/smoke.py): 20 000 rows, every variant but ``build_xlsx``, one round, then one
``SMOKE P4 exports ours/bare = …`` line, the slower export's ratio first.

``--repeat N`` runs every variant N times, round after round (each round starting with another
variant), and gives each ratio as the median of the rounds' own ratios: on a machine shared with
test runs a variant and its baseline measured minutes apart see about the same load.

Seeding happens in the parent, outside the measurement. The baselines generate their rows in
memory and read no database: the database read is part of what the product's figure has to fit in.

To add a variant, write a ``Variant`` (``prepare`` outside the measurement, ``run`` measured) and
register it in ``VARIANTS`` with its baseline in ``BASELINE_OF``; the table and the ratios pick it up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# Runnable as a plain script from anywhere in the checkout, installed package or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from openpyxl import Workbook
from sqlalchemy import text
from sqlalchemy.orm import configure_mappers

from core.config import load_settings
from core.customers.schemas import CustomerQuery, CustomerSort
from core.exports.books import CUSTOMER_COLUMNS, TRANSACTION_COLUMNS, customer_book, transaction_list
from core.exports.xlsx import build_xlsx
from core.payments.models import PaymentSource, PaymentStatus
from core.payments.service import TransactionFilter
from core.runtime import Runtime, configure, unit_of_work
from core.tenants.models import Mode

BATCH_ROWS = 1000
FULL_ROWS = 100_000
SMOKE_ROWS = 20_000
# The book seeded and exported: a business's live book (each business keeps one per mode).
BOOK_MODE = Mode.live
_FIRST_NAMES = [
    "Wanjiku",
    "Otieno",
    "Achieng",
    "Kamau",
    "Njeri",
    "Mwangi",
    "Chebet",
    "Kiprop",
    "Amina",
    "Baraka",
]
_LAST_NAMES = ["Mwangi", "Odhiambo", "Wambui", "Kariuki", "Mutua", "Kiptoo", "Hassan", "Njoroge", "Atieno"]
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
# Final payments as a busy till sees them: mostly paid, the rest the usual ways of not paying.
_STATUSES = [PaymentStatus.success] * 7 + [
    PaymentStatus.failed,
    PaymentStatus.cancelled,
    PaymentStatus.timeout,
]
_SOURCES = [PaymentSource.api] * 5 + [PaymentSource.ussd, PaymentSource.telegram, PaymentSource.c2b]
_RESULTS = {
    PaymentStatus.success: "The service request is processed successfully.",
    PaymentStatus.failed: "The balance is insufficient for the transaction.",
    PaymentStatus.cancelled: "Request cancelled by user",
    PaymentStatus.timeout: "DS timeout user cannot be reached",
}

# (name, phone, total transactions, paid transactions, total paid, first seen, last seen): the export's row.
CustomerRow = tuple[str, str, int, int, int, datetime, datetime]
# (created, phone, customer, amount, status, receipt, reference, source, result, completed)
TransactionRow = tuple[
    datetime, str, str, int, PaymentStatus, str | None, str, PaymentSource, str, datetime | None
]


@dataclass
class Outcome:
    rows: int
    file_bytes: int


@dataclass
class Measurement:
    variant: str
    rows: int
    seconds: float
    file_bytes: int
    rss_before_kib: int  # once ready to write: after imports and setup, before the first row
    rss_peak_kib: int
    load_1min: float  # the machine's load average when the run started (others share it)


def customer_rows(count: int, *, seed: int = 254) -> Iterator[CustomerRow]:
    """Customer-book rows, generated lazily so that generation itself holds no memory."""
    rnd = random.Random(seed)
    for i in range(count):
        first = _EPOCH + timedelta(seconds=rnd.randrange(0, 365 * 86_400))
        last = first + timedelta(seconds=rnd.randrange(0, 300 * 86_400))
        transactions = rnd.randrange(1, 400)
        yield (
            f"{rnd.choice(_FIRST_NAMES)} {rnd.choice(_LAST_NAMES)}",
            f"2547{i:08d}",
            transactions,
            transactions,
            transactions * rnd.randrange(10, 5_000),
            first,
            last,
        )


def transaction_rows(count: int, *, seed: int = 254) -> Iterator[TransactionRow]:
    """Transaction-list rows (final payments of one business), generated lazily."""
    rnd = random.Random(seed)
    for i in range(count):
        created = _EPOCH + timedelta(
            seconds=rnd.randrange(0, 365 * 86_400), microseconds=rnd.randrange(10**6)
        )
        status = rnd.choice(_STATUSES)
        paid = status is PaymentStatus.success
        yield (
            created,
            f"2547{rnd.randrange(10**8):08d}",
            f"{rnd.choice(_FIRST_NAMES)} {rnd.choice(_LAST_NAMES)}",
            rnd.randrange(1, 20_000),
            status,
            f"T{i:09X}" if paid else None,
            f"INV{rnd.randrange(10**6):06d}",
            rnd.choice(_SOURCES),
            _RESULTS[status],
            created + timedelta(seconds=rnd.randrange(5, 60)) if paid else None,
        )


async def customer_batches(count: int, *, size: int = BATCH_ROWS) -> AsyncIterator[list[CustomerRow]]:
    batch: list[CustomerRow] = []
    for row in customer_rows(count):
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
            # A database driver yields to the loop between fetches; so does this stand-in.
            await asyncio.sleep(0)
    if batch:
        yield batch


def _naive(value: datetime | None) -> datetime | None:
    # openpyxl refuses aware datetimes; dropping tzinfo is the cheapest way to get the same cells
    # written (a real export must convert to EAT, which the product pays for).
    return None if value is None else value.replace(tzinfo=None)


def _bare_openpyxl(sheet: str, headers: list[str], rows: Iterator[list[Any]]) -> Outcome:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "baseline.xlsx"
        wb = Workbook(write_only=True)
        ws = wb.create_sheet(sheet)
        ws.append(headers)
        count = 0
        for row in rows:
            ws.append(row)
            count += 1
        wb.save(path)
        return Outcome(rows=count, file_bytes=path.stat().st_size)


class Variant:
    """``prepare`` runs before the measurement starts, ``run`` is measured, ``close`` is not."""

    async def prepare(self, rows: int) -> None:
        return None

    async def run(self, rows: int) -> Outcome:
        raise NotImplementedError

    async def close(self) -> None:
        return None


class Baseline(Variant):
    async def run(self, rows: int) -> Outcome:
        return _bare_openpyxl(
            "Customers",
            [column.header for column in CUSTOMER_COLUMNS],
            ([n, p, c, pc, t, _naive(f), _naive(last)] for n, p, c, pc, t, f, last in customer_rows(rows)),
        )


class BaselineTransactions(Variant):
    async def run(self, rows: int) -> Outcome:
        return _bare_openpyxl(
            "Transactions",
            [column.header for column in TRANSACTION_COLUMNS],
            (
                [_naive(at), ph, cu, am, st.value, rc, ref, src.value, res, _naive(done)]
                for at, ph, cu, am, st, rc, ref, src, res, done in transaction_rows(rows)
            ),
        )


class BuildXlsx(Variant):
    async def run(self, rows: int) -> Outcome:
        path, written = await build_xlsx(
            sheet_title="Customers", columns=CUSTOMER_COLUMNS, batches=customer_batches(rows)
        )
        try:
            return Outcome(rows=written, file_bytes=path.stat().st_size)
        finally:
            path.unlink()


class FromDatabase(Variant):
    """The product configured as it configures itself, with one pooled connection already open."""

    rt: Runtime
    tenant_id: uuid.UUID

    async def prepare(self, rows: int) -> None:
        self.rt = configure(load_settings(DATABASE_URL=os.environ["BENCH_DB_URL"]))
        self.tenant_id = uuid.UUID(os.environ["BENCH_TENANT_ID"])
        # The ORM's mappers are configured by a process's first ORM statement (~3 MiB of SQLAlchemy
        # objects, kept for the life of the process): in a serving process that was a sign-in or a
        # page long before anyone exports, so it is not the export's to pay here.
        configure_mappers()
        async with unit_of_work(readonly=True) as session:
            await session.execute(text("SELECT 1"))

    async def run(self, rows: int) -> Outcome:
        async with unit_of_work(readonly=True) as session:
            path, written = await self.export(session)
        try:
            return Outcome(rows=written, file_bytes=path.stat().st_size)
        finally:
            path.unlink()

    async def export(self, session: Any) -> tuple[Path, int]:
        raise NotImplementedError

    async def close(self) -> None:
        await self.rt.aclose()


# The order of the customer book's rows. last_seen: the list's default (newest first), what an export
# without a chosen sort gets; an index answers it. first_seen: oldest first, no index: SQLite sorts the
# book in the exporting process (its sorter takes ~2 MiB of RSS that the export itself does not hold).
CUSTOMER_ORDERS = {
    "last_seen": CustomerQuery(),
    "first_seen": CustomerQuery(sort=CustomerSort.first_seen_at, desc=False),
}


class CustomerBook(FromDatabase):
    async def export(self, session: Any) -> tuple[Path, int]:
        return await customer_book(
            session,
            tenant_id=self.tenant_id,
            mode=BOOK_MODE,
            query=CUSTOMER_ORDERS[os.environ.get("BENCH_CUSTOMER_ORDER", "last_seen")],
        )


class TransactionList(FromDatabase):
    async def export(self, session: Any) -> tuple[Path, int]:
        return await transaction_list(session, tenant_id=self.tenant_id, filters=TransactionFilter())


VARIANTS: dict[str, Callable[[], Variant]] = {
    "baseline": Baseline,
    "build_xlsx": BuildXlsx,
    "customer_book": CustomerBook,
    "baseline_transactions": BaselineTransactions,
    "transaction_list": TransactionList,
}
BASELINE_OF = {
    "build_xlsx": "baseline",
    "customer_book": "baseline",
    "transaction_list": "baseline_transactions",
}
FROM_DATABASE = {"customer_book", "transaction_list"}


def seed_database(rows: int, postgres: str | None) -> tuple[str, str, Callable[[], None]]:
    """A fresh database holding one business whose live customer book is ``customer_rows(rows)`` and
    whose payments are ``transaction_rows(rows)``. Returns (url, tenant id, cleanup)."""
    from sqlalchemy import insert

    from core.customers.models import Customer
    from core.migrate import upgrade
    from core.payments.models import Payment
    from core.tenants.models import ChannelKind, Environment, MpesaChannel, Tenant

    cleanup: Callable[[], None]
    if postgres:
        import asyncpg

        name = f"lipapush_bench_{os.getpid()}"
        head = postgres.replace("postgresql+asyncpg://", "postgresql://").rstrip("/")
        if head.count("/") > 2:  # a database named in the URL: use its server
            head = head.rsplit("/", 1)[0]

        async def admin(sql: str) -> None:
            conn = await asyncpg.connect(f"{head}/postgres")
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
        url = f"{head.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
        cleanup = lambda: asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))  # noqa: E731
    else:
        tmp = tempfile.mkdtemp(prefix="lipapush-bench-")
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        cleanup = lambda: shutil.rmtree(tmp, ignore_errors=True)  # noqa: E731
    upgrade(url)
    rt = configure(load_settings(DATABASE_URL=url))
    tenant_id, channel_id = uuid.uuid4(), uuid.uuid4()

    async def insert_all(table: Any, values: Iterator[dict[str, object]]) -> None:
        batch: list[dict[str, object]] = []
        async with unit_of_work() as session:
            for value in values:
                batch.append(value)
                if len(batch) == 5000:
                    await session.execute(insert(table), batch)
                    batch = []
            if batch:
                await session.execute(insert(table), batch)

    def customers() -> Iterator[dict[str, object]]:
        for name, phone, count, paid, amount, first, last in customer_rows(rows):
            yield {
                "tenant_id": tenant_id,
                "mode": BOOK_MODE,
                "name": name,
                "phone": phone,
                "requested_count": count,
                "requested_total": amount,
                "paid_count": paid,
                "paid_total": amount,
                "first_seen_at": first,
                "last_seen_at": last,
            }

    def payments() -> Iterator[dict[str, object]]:
        for at, phone, name, amount, status, receipt, ref, source, result, done in transaction_rows(rows):
            yield {
                "tenant_id": tenant_id,
                "channel_id": channel_id,
                "mode": BOOK_MODE,
                "source": source,
                "status": status,
                "amount": amount,
                "phone": phone,
                "customer_name": name,
                "account_reference": ref,
                "description": "Payment",
                "receipt": receipt,
                "result_desc": result,
                "created_at": at,
                "updated_at": done or at,
                "completed_at": done,
            }

    async def seed() -> None:
        try:
            async with unit_of_work() as session:
                session.add(
                    Tenant(
                        id=tenant_id, name="Bench", slug="bench", email="b@example.com", phone="254700000000"
                    )
                )
                await session.flush()
                session.add(
                    MpesaChannel(
                        id=channel_id,
                        tenant_id=tenant_id,
                        environment=Environment.production,
                        kind=ChannelKind.paybill,
                        business_short_code="174379",
                        consumer_key_enc="-",
                        consumer_secret_enc="-",
                        passkey_enc="-",
                        callback_token=uuid.uuid4().hex,
                    )
                )
            await insert_all(Customer, customers())
            await insert_all(Payment, payments())
        finally:
            await rt.aclose()

    asyncio.run(seed())
    return url, str(tenant_id), cleanup


class RssSampler:
    """Samples this process's *current* RSS every few ms. ru_maxrss is a high-water mark that the
    imports alone can set, which would hide what writing the rows costs."""

    def __init__(self, interval: float = 0.005) -> None:
        import threading

        import psutil

        self._proc = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


async def measure(variant: str, rows: int) -> Measurement:
    """Run one variant in this process; meant to be called in a fresh child."""
    import gc

    import psutil

    run = VARIANTS[variant]()
    await run.prepare(rows)
    try:
        gc.collect()
        before = psutil.Process().memory_info().rss // 1024
        load = os.getloadavg()[0]
        start = time.perf_counter()
        with RssSampler() as sampler:
            outcome = await run.run(rows)
        seconds = time.perf_counter() - start
    finally:
        await run.close()
    return Measurement(
        variant=variant,
        rows=outcome.rows,
        seconds=seconds,
        file_bytes=outcome.file_bytes,
        rss_before_kib=before,
        rss_peak_kib=sampler.peak // 1024,
        load_1min=load,
    )


def measure_in_subprocess(variant: str, rows: int, env: dict[str, str] | None = None) -> Measurement:
    completed = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--rows", str(rows), "--child", variant],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    return Measurement(**json.loads(completed.stdout))


@dataclass
class Summary:
    variant: str
    baseline: str
    ratios: list[float]  # ours / baseline time, one per round, sorted
    growth_mib: float  # the largest RSS growth while writing of any round
    baseline_growth_mib: float

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)


def summarise(rounds: list[list[Measurement]]) -> list[Summary]:
    """Per variant against its baseline: the median of the per-round time ratios (a variant and its
    baseline run minutes apart at most, so a load that comes and goes shifts both) and the largest RSS
    growth of any round."""
    summaries = []
    for variant, baseline in BASELINE_OF.items():
        pairs = [
            (ours, base)
            for results in rounds
            for ours in results
            for base in results
            if ours.variant == variant and base.variant == baseline
        ]
        if pairs:
            summaries.append(
                Summary(
                    variant=variant,
                    baseline=baseline,
                    ratios=sorted(ours.seconds / base.seconds for ours, base in pairs),
                    growth_mib=max(_growth_mib(ours) for ours, _ in pairs),
                    baseline_growth_mib=max(_growth_mib(base) for _, base in pairs),
                )
            )
    return summaries


def print_table(rounds: list[list[Measurement]]) -> list[Summary]:
    print(
        f"{'round':>5} {'variant':<22} {'rows':>8} {'seconds':>8} {'rows/s':>8} {'file MiB':>9} "
        f"{'RSS MiB':>8} {'Δ RSS MiB':>10} {'load':>5}"
    )
    for number, results in enumerate(rounds, start=1):
        for r in results:
            print(
                f"{number:>5} {r.variant:<22} {r.rows:>8} {r.seconds:>8.2f} {r.rows / r.seconds:>8.0f} "
                f"{r.file_bytes / 2**20:>9.2f} {r.rss_peak_kib / 1024:>8.1f} "
                f"{_growth_mib(r):>10.1f} {r.load_1min:>5.2f}"
            )
    summaries = summarise(rounds)
    if summaries:
        print()
    for s in summaries:
        spread = f" (rounds {s.ratios[0]:.2f}-{s.ratios[-1]:.2f}x)" if len(s.ratios) > 1 else ""
        # Growth over the ready-to-write RSS is printed in MiB, not as a ratio: the baseline's growth
        # is close to zero, so a ratio of the two would mostly measure noise.
        print(
            f"{s.variant} / {s.baseline}: time {s.ratio:.2f}x{spread}, growth while writing up to "
            f"{s.growth_mib:+.1f} MiB vs {s.baseline_growth_mib:+.1f} MiB"
        )
    return summaries


def smoke_line(summaries: list[Summary]) -> str:
    """The one line bench/smoke.py reads: the slower of the two exports' ratios first."""
    by_name = {s.variant: s for s in summaries}
    books, tx = by_name.get("customer_book"), by_name.get("transaction_list")
    if books is None or tx is None:
        return "SMOKE P4 exports ours/bare = n/a (a variant did not run)"
    return (
        f"SMOKE P4 exports ours/bare = {max(books.ratio, tx.ratio):.2f} (customer book {books.ratio:.2f}x, "
        f"transaction list {tx.ratio:.2f}x; RSS growth {books.growth_mib:.1f} and {tx.growth_mib:.1f} MiB "
        f"vs {max(books.baseline_growth_mib, tx.baseline_growth_mib):.1f} MiB)"
    )


def _growth_mib(m: Measurement) -> float:
    return (m.rss_peak_kib - m.rss_before_kib) / 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rows", type=int, help=f"rows of each export (default {FULL_ROWS}; smoke {SMOKE_ROWS})"
    )
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS))
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"seconds-long: {SMOKE_ROWS} rows, no build_xlsx, one round, and a SMOKE P4 line at the end",
    )
    parser.add_argument("--child", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument(
        "--postgres", help="Postgres server URL for the variants that read a database (default: SQLite)"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds of every variant (a shared machine's load varies)"
    )
    parser.add_argument(
        "--customer-order",
        choices=list(CUSTOMER_ORDERS),
        default="last_seen",
        help="the customer book's order (default: the list's, newest seen first)",
    )
    args = parser.parse_args(argv)
    args.rows = args.rows or (SMOKE_ROWS if args.smoke else FULL_ROWS)
    args.variants = args.variants or [v for v in VARIANTS if not (args.smoke and v == "build_xlsx")]

    if args.child:
        print(json.dumps(asdict(asyncio.run(measure(args.child, args.rows)))))
        return

    print(
        f"python {sys.version.split()[0]}, {args.rows} rows, {os.cpu_count()} CPUs, one fresh process each, "
        f"{args.repeat} round(s)"
    )
    env: dict[str, str] = {}
    cleanup: Callable[[], None] = lambda: None  # noqa: E731
    if FROM_DATABASE & set(args.variants):
        t0 = time.perf_counter()
        url, tenant_id, cleanup = seed_database(args.rows, args.postgres)
        env = {"BENCH_DB_URL": url, "BENCH_TENANT_ID": tenant_id, "BENCH_CUSTOMER_ORDER": args.customer_order}
        where = f"{'postgres' if args.postgres else 'sqlite'}; customer book by {args.customer_order}"
        print(
            f"seeded {args.rows} customers and {args.rows} payments ({where}) "
            f"in {time.perf_counter() - t0:.0f}s"
        )
    print()
    try:
        rounds = []
        for number in range(args.repeat):
            # Each round starts with a different variant, so none always runs first after seeding.
            order = (
                args.variants[number % len(args.variants) :] + args.variants[: number % len(args.variants)]
            )
            results = [measure_in_subprocess(variant, args.rows, env) for variant in order]
            rounds.append(sorted(results, key=lambda r: args.variants.index(r.variant)))
        summaries = print_table(rounds)
    finally:
        cleanup()
    if args.smoke:
        print(smoke_line(summaries))


if __name__ == "__main__":
    main()
