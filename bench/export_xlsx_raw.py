"""What does the export cost on top of bare openpyxl? Run by hand:

    python bench/export_xlsx_raw.py --rows 100000

Each variant runs in a fresh subprocess, so its peak RSS is its own and not a high-water mark left
by an earlier variant. Variants:

* ``baseline``: openpyxl write-only, the same rows, no styling, no checks, no thread; the floor.
* ``build_xlsx``: ``core.exports.xlsx.build_xlsx`` with customer-book columns, fed batches of 1000
  from an async generator, as the web endpoint feeds it from the database.
* ``customer_book``: the real export path end to end: ``core.exports.books.customer_book`` reading the
  same rows (the business's live book) from a seeded database (SQLite by default, ``--postgres URL``
  for a Postgres server) and writing the customer-book workbook. Seeding happens in the parent,
  outside the measurement.

To add a variant (e.g. rows read from the database), write ``def run_x(rows: int) -> Outcome`` and
register it in ``VARIANTS``; the table and the ratios pick it up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

# Runnable as a plain script from anywhere in the checkout, installed package or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from openpyxl import Workbook

from core.config import load_settings
from core.customers.schemas import CustomerQuery, CustomerSort
from core.exports.books import customer_book
from core.exports.xlsx import Column, build_xlsx
from core.runtime import configure, unit_of_work
from core.tenants.models import Mode

BATCH_ROWS = 1000
# The book seeded and exported: a business's live book (each business keeps one per mode).
BOOK_MODE = Mode.live
CUSTOMER_COLUMNS = [
    Column("Name", "text", 28),
    Column("Phone", "text", 15),
    Column("Total transactions", "int", 12),
    Column("Total amount processed (KES)", "money", 18),
    Column("First transaction (EAT)", "datetime", 20),
    Column("Last transaction (EAT)", "datetime", 20),
]
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

Row = tuple[str, str, int, int, datetime, datetime]


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
    rss_before_kib: int  # after imports and setup, before the first row
    rss_peak_kib: int


def customer_rows(count: int, *, seed: int = 254) -> Iterator[Row]:
    """Customer-book-like rows, generated lazily so that generation itself holds no memory."""
    rnd = random.Random(seed)
    for i in range(count):
        first = _EPOCH + timedelta(seconds=rnd.randrange(0, 365 * 86_400))
        last = first + timedelta(seconds=rnd.randrange(0, 300 * 86_400))
        transactions = rnd.randrange(1, 400)
        yield (
            f"{rnd.choice(_FIRST_NAMES)} {rnd.choice(_LAST_NAMES)}",
            f"2547{i:08d}",
            transactions,
            transactions * rnd.randrange(10, 5_000),
            first,
            last,
        )


async def customer_batches(count: int, *, size: int = BATCH_ROWS) -> AsyncIterator[list[Row]]:
    batch: list[Row] = []
    for row in customer_rows(count):
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
            # A database driver yields to the loop between fetches; so does this stand-in.
            await asyncio.sleep(0)
    if batch:
        yield batch


def run_baseline(rows: int) -> Outcome:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "baseline.xlsx"
        wb = Workbook(write_only=True)
        ws = wb.create_sheet("Customers")
        ws.append([column.header for column in CUSTOMER_COLUMNS])
        for name, phone, count, amount, first, last in customer_rows(rows):
            # openpyxl refuses aware datetimes; dropping tzinfo is the cheapest way to get the
            # same cells written (a real export must convert to EAT, which build_xlsx pays for).
            ws.append([name, phone, count, amount, first.replace(tzinfo=None), last.replace(tzinfo=None)])
        wb.save(path)
        return Outcome(rows=rows, file_bytes=path.stat().st_size)


def run_build_xlsx(rows: int) -> Outcome:
    path, written = asyncio.run(
        build_xlsx(sheet_title="Customers", columns=CUSTOMER_COLUMNS, batches=customer_batches(rows))
    )
    try:
        return Outcome(rows=written, file_bytes=path.stat().st_size)
    finally:
        path.unlink()


def run_customer_book(rows: int) -> Outcome:
    rt = configure(load_settings(DATABASE_URL=os.environ["BENCH_DB_URL"]))
    tenant_id = uuid.UUID(os.environ["BENCH_TENANT_ID"])

    async def export() -> tuple[Path, int]:
        try:
            async with unit_of_work(readonly=True) as session:
                return await customer_book(
                    session,
                    tenant_id=tenant_id,
                    mode=BOOK_MODE,
                    query=CustomerQuery(sort=CustomerSort.first_seen_at, desc=False),
                )
        finally:
            await rt.aclose()

    path, written = asyncio.run(export())
    try:
        return Outcome(rows=written, file_bytes=path.stat().st_size)
    finally:
        path.unlink()


VARIANTS: dict[str, Callable[[int], Outcome]] = {
    "baseline": run_baseline,
    "build_xlsx": run_build_xlsx,
    "customer_book": run_customer_book,
}


def seed_database(rows: int, postgres: str | None) -> tuple[str, str, Callable[[], None]]:
    """A fresh database holding one business whose customer book is ``customer_rows(rows)``.
    Returns (url, tenant id, cleanup)."""
    from sqlalchemy import insert

    from core.customers.models import Customer
    from core.migrate import upgrade
    from core.tenants.models import Tenant

    cleanup: Callable[[], None]
    if postgres:
        import asyncpg

        name = f"lipapush_bench_{os.getpid()}"
        head = postgres.replace("postgresql+asyncpg://", "postgresql://").rsplit("/", 1)[0]

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
        cleanup = lambda: None  # noqa: E731
    upgrade(url)
    rt = configure(load_settings(DATABASE_URL=url))
    tenant_id = uuid.uuid4()

    async def seed() -> None:
        try:
            async with unit_of_work() as session:
                session.add(
                    Tenant(
                        id=tenant_id, name="Bench", slug="bench", email="b@example.com", phone="254700000000"
                    )
                )
                await session.flush()
                batch: list[dict[str, object]] = []
                for name, phone, count, amount, first, last in customer_rows(rows):
                    batch.append(
                        {
                            "tenant_id": tenant_id,
                            "mode": BOOK_MODE,
                            "name": name,
                            "phone": phone,
                            "requested_count": count,
                            "requested_total": amount,
                            "paid_count": count,
                            "paid_total": amount,
                            "first_seen_at": first,
                            "last_seen_at": last,
                        }
                    )
                    if len(batch) == 5000:
                        await session.execute(insert(Customer), batch)
                        batch = []
                if batch:
                    await session.execute(insert(Customer), batch)
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


def measure(variant: str, rows: int) -> Measurement:
    """Run one variant in this process; meant to be called in a fresh child."""
    import gc

    import psutil

    run = VARIANTS[variant]
    gc.collect()
    before = psutil.Process().memory_info().rss // 1024
    start = time.perf_counter()
    with RssSampler() as sampler:
        outcome = run(rows)
    seconds = time.perf_counter() - start
    return Measurement(
        variant=variant,
        rows=outcome.rows,
        seconds=seconds,
        file_bytes=outcome.file_bytes,
        rss_before_kib=before,
        rss_peak_kib=sampler.peak // 1024,
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


def print_table(results: list[Measurement]) -> None:
    print(
        f"{'variant':<12} {'rows':>9} {'seconds':>8} {'rows/s':>9} {'file MiB':>9} "
        f"{'RSS MiB':>8} {'Δ RSS MiB':>10}"
    )
    for r in results:
        print(
            f"{r.variant:<12} {r.rows:>9} {r.seconds:>8.2f} {r.rows / r.seconds:>9.0f} "
            f"{r.file_bytes / 2**20:>9.2f} {r.rss_peak_kib / 1024:>8.1f} "
            f"{_growth_mib(r):>10.1f}"
        )
    base = next((r for r in results if r.variant == "baseline"), None)
    if base is None:
        return
    print()
    for r in results:
        if r is base:
            continue
        # Growth over the post-import RSS is printed in MiB, not as a ratio: the baseline's growth
        # is close to zero, so a ratio of the two would mostly measure noise.
        print(
            f"{r.variant} / baseline: time {r.seconds / base.seconds:.2f}x, "
            f"peak RSS {r.rss_peak_kib / base.rss_peak_kib:.2f}x "
            f"(growth while writing {_growth_mib(r):+.1f} MiB vs {_growth_mib(base):+.1f} MiB)"
        )


def _growth_mib(m: Measurement) -> float:
    return (m.rss_peak_kib - m.rss_before_kib) / 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--child", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument(
        "--postgres", help="Postgres server URL for the customer_book variant (default: SQLite)"
    )
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(asdict(measure(args.child, args.rows))))
        return

    print(
        f"python {sys.version.split()[0]}, {args.rows} rows, batches of {BATCH_ROWS}, one fresh process each"
    )
    print()
    env: dict[str, str] = {}
    cleanup: Callable[[], None] = lambda: None  # noqa: E731
    if "customer_book" in args.variants:
        url, tenant_id, cleanup = seed_database(args.rows, args.postgres)
        env = {"BENCH_DB_URL": url, "BENCH_TENANT_ID": tenant_id}
        print(f"customer_book reads from {'postgres' if args.postgres else 'sqlite'}")
    try:
        print_table([measure_in_subprocess(variant, args.rows, env) for variant in args.variants])
    finally:
        cleanup()


if __name__ == "__main__":
    main()
