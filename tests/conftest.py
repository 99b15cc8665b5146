from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from core.config import Settings, load_settings
from core.migrate import upgrade
from core.runtime import Runtime, configure
from tests.support import services
from tests.support.services import TestDatabase


def pytest_report_header() -> list[str]:
    return [
        f"lipapush database: {'postgres ' + services.PG_URL if services.PG_URL else 'sqlite (embedded)'}",
        f"lipapush broker: {'redis ' + services.REDIS_URL if services.REDIS_URL else 'in-process'}",
    ]


@pytest.fixture(scope="session")
def database() -> Iterator[TestDatabase]:
    try:
        db = services.create_database("it")
    except OSError as exc:
        if services.REQUIRE:
            raise
        pytest.skip(f"TEST_DATABASE_URL is set but Postgres is unreachable: {exc}")
    upgrade(db.url)
    yield db
    services.drop_database(db)


BOT_TOKEN = "123456:TEST-lipapush"


@dataclass
class LiveServer:
    url: str
    rt: Runtime
    telegram_url: str = ""

    @property
    def settings(self) -> Settings:
        return self.rt.settings


@pytest.fixture(scope="session")
async def server(database: TestDatabase) -> AsyncIterator[LiveServer]:
    """The real app (API, callbacks, worker, scheduler, Daraja simulator) on a real port, in-process.

    Callbacks travel over real HTTP from the simulator to our callback endpoint and are processed by
    the real Dramatiq worker (Redis broker when TEST_REDIS_URL is set)."""
    from sim.telegram import create_app as create_telegram_sim
    from web.app import create_app

    # The Telegram Bot API stand-in first: the app's bot polls it from start-up.
    tg_port = services.free_port()
    tg = uvicorn.Server(
        uvicorn.Config(
            create_telegram_sim(), host="127.0.0.1", port=tg_port, log_level="warning", lifespan="on"
        )
    )
    tg_task = asyncio.create_task(tg.serve())
    await _started(tg, tg_task)

    port = services.free_port()
    url = f"http://127.0.0.1:{port}"
    settings = load_settings(
        DATABASE_URL=database.url,
        REDIS_URL=services.REDIS_URL,
        REDIS_NAMESPACE=services.redis_namespace(),
        PUBLIC_BASE_URL=url,
        SIM_CALLBACK_DELAY=0.2,
        RECONCILE_AFTER_SECONDS=2,
        EXPIRE_AFTER_SECONDS=60,
        EXPORT_DIR=tempfile.mkdtemp(prefix="lipapush-exports-"),
        TELEGRAM_BOT_TOKEN=BOT_TOKEN,
        TELEGRAM_API_BASE=f"http://127.0.0.1:{tg_port}",
    )
    rt = configure(settings)
    app = create_app(rt, mount_simulator=True, run_worker=True, with_scheduler=True, with_bot=True)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(srv.serve())
    await _started(srv, task)
    yield LiveServer(url=url, rt=rt, telegram_url=f"http://127.0.0.1:{tg_port}")
    srv.should_exit = True
    await task
    tg.should_exit = True
    await tg_task


async def _started(srv: uvicorn.Server, task: asyncio.Task[None]) -> None:
    for _ in range(200):
        if srv.started:
            return
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    raise RuntimeError("server did not start")


@pytest.fixture
async def client(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
        yield c
