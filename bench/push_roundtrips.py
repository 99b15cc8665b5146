"""Database round trips per STK push and per callback, counted, not timed (so it means the same on a
busy machine): statements sent and transactions begun, per push through POST /api/stk-push with an
API key, and per success callback applied by the worker.

    .venv/bin/python bench/push_roundtrips.py                 # SQLite temp file, in-process broker
    TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python bench/push_roundtrips.py

It runs the real app (create_app with the simulator mounted and the worker in-process) on a free port,
makes one test-mode business with a key, sends --pushes pushes one after another (the simulator holds
its callbacks back until every push is answered), then lets the callbacks in and waits for every
payment to be final. Every cursor execution of the process is counted by phase; with --show the
statements of one push and one callback are printed. Also printed: the CPU time of the loop that serves,
simulates and sends the pushes, per push (a figure to compare two versions of the code by on a busy
machine, where the wall clock of push_throughput.py varies more than the change)."""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("LIPAPUSH_HOME", tempfile.mkdtemp(prefix="lipapush-bench-"))

import httpx
from sqlalchemy import event
from sqlalchemy.engine import Engine

PHASE = {"name": "setup"}
COUNTS: collections.Counter[str] = collections.Counter()
SHOWN: dict[str, list[str]] = collections.defaultdict(list)


def _phase() -> str:
    # Jobs (a callback's processing) run on the in-process worker's own thread, whatever the phase.
    return "callback" if threading.current_thread() is not threading.main_thread() else PHASE["name"]


def _count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
    phase = _phase()
    COUNTS[f"{phase}:statements"] += 1
    first = statement.strip().split()[0].upper() if statement.strip() else "?"
    if first in ("BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT"):
        COUNTS[f"{phase}:{first.lower()}"] += 1
    SHOWN[phase].append(" ".join(statement.split())[:160])


def _begin(conn: Any) -> None:
    COUNTS[f"{_phase()}:transactions"] += 1


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pushes", type=int, default=20)
    parser.add_argument(
        "--live", action="store_true", help="a live business (commission held and posted), not a test one"
    )
    parser.add_argument(
        "--show", action="store_true", help="print the statements of the last push and callback"
    )
    args = parser.parse_args()

    from core.config import load_settings
    from core.migrate import upgrade
    from core.runtime import configure
    from core.tenants.models import Environment
    from tests.support import services
    from tests.support.factories import fund_wallet, make_api_key, make_tenant
    from tests.support.servers import bound_socket, serving_on
    from web.app import create_app

    db = await asyncio.to_thread(services.create_database, "roundtrips")
    try:
        await asyncio.to_thread(upgrade, db.url, migration_url=db.owner_url)
        sock, port = bound_socket()
        url = f"http://127.0.0.1:{port}"
        settings = load_settings(
            DATABASE_URL=db.url,
            REDIS_URL=services.REDIS_URL,
            REDIS_NAMESPACE=services.redis_namespace(),
            PUBLIC_BASE_URL=url,
            # Callbacks arrive after every push was answered, so the two phases are counted apart.
            SIM_CALLBACK_DELAY=float(args.pushes) * 0.5 + 5,
            LOG_LEVEL="WARNING",
            STK_PUSHES_PER_KEY_PER_MINUTE=100_000,  # --pushes may pass the default 120 a minute
            # A live business's production channel reaches the mounted simulator, never Safaricom.
            DARAJA_PRODUCTION_URL=f"{url}/sim/daraja",
        )
        rt = configure(settings)
        app = create_app(rt, mount_simulator=True, run_worker=True, with_scheduler=False)
        event.listen(Engine, "before_cursor_execute", _count)
        event.listen(Engine, "begin", _begin)
        async with serving_on(app, sock), httpx.AsyncClient(base_url=url, timeout=30) as client:
            if args.live:
                tenant, _ = await make_tenant(plan="founding")
                await fund_wallet(tenant, 10_000_000)
            else:
                tenant, _ = await make_tenant(environment=Environment.simulator)
            key = await make_api_key(tenant=tenant)
            headers = {"Authorization": f"Bearer {key}"}
            # One push first, not counted: caches, the OAuth token, prepared statements.
            await client.post("/api/stk-push", json={"phone": "0722000111", "amount": 10}, headers=headers)
            ids = []
            cpu = 0.0
            for i in range(args.pushes):
                SHOWN["push"].clear()
                PHASE["name"] = "push"
                started = time.thread_time()
                r = await client.post(
                    "/api/stk-push",
                    json={"phone": f"07220{i:05d}"[:10], "amount": 10 + i},
                    headers=headers,
                )
                cpu += time.thread_time() - started
                PHASE["name"] = "idle"
                assert r.status_code == 201, r.text
                ids.append(r.json()["id"])
            PHASE["name"] = "callback"
            SHOWN["callback"].clear()
            deadline = asyncio.get_running_loop().time() + 120
            while True:
                done = 0
                PHASE["name"] = "poll"
                for pid in ids:
                    got = await client.get(f"/api/transactions/{pid}", headers=headers)
                    done += got.json()["status"] != "pending"
                PHASE["name"] = "callback"
                if done == len(ids) or asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.5)
            PHASE["name"] = "idle"
        n = args.pushes
        print(
            f"database: {'postgres' if services.PG_URL else 'sqlite'}; {n} pushes, {done} callbacks applied"
        )
        for phase in ("push", "callback"):
            s, t = COUNTS[f"{phase}:statements"], COUNTS[f"{phase}:transactions"]
            print(f"{phase:9s} statements/each {s / n:6.1f}   transactions/each {t / n:5.1f}")
        # One loop serves, simulates and asks: a figure to compare runs by, not the server's own cost.
        print(f"push      CPU ms/each {cpu * 1000 / n:6.2f}   (app, simulator, client)")
        if args.show:
            for phase in ("push", "callback"):
                print(f"--- {phase}")
                print("\n".join(SHOWN[phase][-60:]))
    finally:
        await asyncio.to_thread(services.drop_database, db)


if __name__ == "__main__":
    asyncio.run(main())
