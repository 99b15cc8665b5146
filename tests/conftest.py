from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.config import SANDBOX_PASSKEY, Settings, load_settings
from core.migrate import upgrade
from core.runtime import Runtime, configure
from tests.support import services
from tests.support.servers import bound_socket, serving, serving_on
from tests.support.services import TestDatabase

SIM_CERT = Path(__file__).resolve().parent.parent / "sim" / "daraja" / "certs" / "simulator.cer"

# Whatever a test starts (a CLI subprocess, a settings default) keeps out of the developer's own data
# directory (~/.local/share/lipapush: the embedded database and a running serve's server.json).
_HOME = tempfile.TemporaryDirectory(prefix="lipapush-test-home-")
os.environ["LIPAPUSH_HOME"] = _HOME.name


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
    upgrade(db.url, migration_url=db.owner_url)
    yield db
    services.drop_database(db)


BOT_TOKEN = "123456:TEST-lipapush"
AT_KEY = "at-test-key"


@dataclass
class LiveServer:
    url: str
    rt: Runtime
    telegram_url: str = ""
    app: Any = None
    at_url: str = ""
    # Daraja stand-ins behind DARAJA_PRODUCTION_URL and DARAJA_SANDBOX_URL: each its own simulator on
    # its own port, so a test can tell which host a push reached (the mounted /sim/daraja is the
    # `simulator` environment's).
    production_url: str = ""
    sandbox_url: str = ""

    @property
    def settings(self) -> Settings:
        return self.rt.settings


@pytest.fixture(scope="session")
async def server(database: TestDatabase) -> AsyncIterator[LiveServer]:
    """The real app (API, callbacks, worker, scheduler, bot, Daraja simulator) on a real port, in-process.

    Callbacks travel over real HTTP from the simulator to our callback endpoint and are processed by
    the real Dramatiq worker (Redis broker when TEST_REDIS_URL is set); the bot polls the Telegram
    Bot API stand-in over HTTP. Production and sandbox channels (make_tenant's default is production,
    so its payments are live) reach two more simulators, never Safaricom."""
    from sim.africastalking import create_app as create_at_sim
    from sim.daraja import create_app as create_daraja_sim
    from sim.telegram import create_app as create_telegram_sim
    from web.app import create_app

    sock, port = bound_socket()
    url = f"http://127.0.0.1:{port}"
    # The stand-ins first: the app's bot polls Telegram from start-up; SMS go to Africa's Talking,
    # which posts delivery reports back to the app.
    at_sim = create_at_sim(api_key=AT_KEY, username="lipapush", dlr_url=f"{url}/callbacks/at/delivery")
    async with (
        serving(create_telegram_sim()) as telegram_url,
        serving(at_sim) as at_url,
        serving(create_daraja_sim(callback_delay=0.2)) as production_url,
        serving(create_daraja_sim(callback_delay=0.2)) as sandbox_url,
    ):
        settings = load_settings(
            DATABASE_URL=database.url,
            REDIS_URL=services.REDIS_URL,
            REDIS_NAMESPACE=services.redis_namespace(),
            PUBLIC_BASE_URL=url,
            SIM_CALLBACK_DELAY=0.2,
            # Webhook receivers in tests listen on 127.0.0.1; retries come in seconds, not minutes.
            WEBHOOK_ALLOW_PRIVATE_TARGETS=True,
            WEBHOOK_RETRY_SCALE=0.01,
            RECONCILE_AFTER_SECONDS=2,
            EXPIRE_AFTER_SECONDS=60,
            EXPORT_DIR=tempfile.mkdtemp(prefix="lipapush-exports-"),
            TELEGRAM_BOT_TOKEN=BOT_TOKEN,
            TELEGRAM_API_BASE=telegram_url,
            AT_USERNAME="lipapush",
            AT_API_KEY=AT_KEY,
            AT_BASE_URL=at_url,
            AT_SENDER_ID="LIPAPUSH",
            DARAJA_PRODUCTION_URL=production_url,
            DARAJA_SANDBOX_URL=sandbox_url,
            # The stand-ins behind those URLs decrypt initiator passwords with the simulator's key, as
            # Safaricom does with its own: its certificate stands in for Safaricom's.
            DARAJA_CERT_PRODUCTION=str(SIM_CERT),
            DARAJA_CERT_SANDBOX=str(SIM_CERT),
            # Wallet top-ups go through the platform's own channel: a production one, as in a real
            # deployment, so a top-up is a live payment its business's live keys can see.
            PLATFORM_ENVIRONMENT="production",
            PLATFORM_CONSUMER_KEY="platform-test-key",
            PLATFORM_CONSUMER_SECRET="platform-test-secret",
            PLATFORM_PASSKEY=SANDBOX_PASSKEY,
        )
        rt = configure(settings)
        app = create_app(rt, mount_simulator=True, run_worker=True, with_scheduler=True, with_bot=True)
        async with serving_on(app, sock):
            yield LiveServer(
                url=url,
                rt=rt,
                telegram_url=telegram_url,
                app=app,
                at_url=at_url,
                production_url=production_url,
                sandbox_url=sandbox_url,
            )


@pytest.fixture
async def client(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
        yield c
