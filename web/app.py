"""The FastAPI application factory: the composition root of the HTTP face."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as ASGIScope

# Every job module registers its jobs before the broker declares actors.
import core.exports.global_exports
import core.exports.jobs
import core.mpesa_inbox.jobs
import core.notify.jobs
import core.payments.jobs
import core.payments.push
import core.payout_batches.jobs  # noqa: F401  - the last `import core.…` binds the name ruff checks
from core.billing.jobs import enforce_overdue, issue_invoices
from core.billing.subscriptions import send_reminders as subscription_reminders
from core.confirmations.jobs import prune_confirmations
from core.context import RequestInfo, reset_request, set_request
from core.db import Scope
from core.hotspot.provision import sweep as hotspot_sweep
from core.jobs.scheduler import Periodic, run_scheduler
from core.lookups.jobs import sweep_lookups
from core.payments.reconcile import reconcile_pending
from core.payouts.jobs import reconcile_payouts
from core.plans.jobs import renew_plans
from core.runtime import Runtime, unit_of_work
from core.usage.jobs import prune_usage
from core.webhooks.jobs import prune_webhooks
from ussd.router import ussd_router
from web.api import (
    activity,
    admin_hotspot,
    apps,
    auth,
    c2b,
    channels,
    customers,
    dashboard,
    hotspot,
    lookups,
    payments,
    payout_batches,
    payout_grant,
    payouts,
    plans,
    reversals,
    settings,
    subscriptions,
    usage,
    wallet,
    webhooks,
)
from web.callbacks import router as callbacks_router
from web.callbacks_c2b import router as c2b_validation_router
from web.captive import router as captive_router
from web.docs import install_docs
from web.errors import install_error_handlers
from web.guides import install_guides
from web.limits import BodyLimits, LimitRequestBody, refuse_unstorable_body
from web.mcp.http import install_mcp
from web.openapi import API_ERRORS
from web.openapi_webhooks import install_webhook_docs
from web.panel import install_panel
from web.usage_middleware import install_usage_log

log = logging.getLogger("lipapush")


def periodic_jobs(rt: Runtime) -> list[Periodic]:
    every = max(1.0, min(30.0, rt.settings.RECONCILE_AFTER_SECONDS / 3))
    return [
        Periodic(reconcile_pending, every=every),
        Periodic(issue_invoices, every=600),
        Periodic(enforce_overdue, every=600),
        # Hotspot vouchers: stuck provisioning retried, routers reconciled, expiries applied.
        Periodic(hotspot_sweep, every=60),
        Periodic(subscription_reminders, every=3600),
        Periodic(prune_webhooks, every=24 * 3600),
        Periodic(prune_usage, every=24 * 3600),
        Periodic(prune_confirmations, every=24 * 3600),
        Periodic(renew_plans, every=3600),
        # Money out: pending payouts re-sent or asked about; lookups answered, timed out, refreshed daily.
        Periodic(reconcile_payouts, every=every),
        Periodic(sweep_lookups, every=60),
    ]


def settle_heap() -> None:
    """Move everything loaded at start-up (modules, templates, mappers) out of the garbage collector's
    reach. Without it every full collection walks that whole heap: a ~150 ms pause every few hundred
    requests, which at 4 concurrent admins put the Transactions page's p99 at 160-200 ms against 20-40
    ms (bench/transactions_page.py)."""
    gc.collect()
    gc.freeze()


class RequestContext:
    """The request's id and client address (core.context) for the logs and audit rows of everything it
    does, its id on the answer as X-Request-Id, and a JSON 500 carrying that id for what escapes the
    application. A pure ASGI middleware: `BaseHTTPMiddleware` ran each request in a task group of its
    own with a streamed copy of the response, a few percent of the CPU of an STK push
    (bench/push_throughput.py)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = ""
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                rid = value.decode("latin-1")[:64]
                break
        rid = rid or secrets.token_hex(8)
        client = scope.get("client")
        started = False
        header = (b"x-request-id", rid.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                # Ours replaces whatever the route set, as Response.headers[...] = ... did.
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        token = set_request(RequestInfo(request_id=rid, ip=client[0] if client else None))
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Rendered here, while the request id is still set, so the 500 body and log carry it.
            log.exception("unhandled error (request %s)", rid)
            if started:
                raise  # the answer has begun: the server can only drop the connection
            response = JSONResponse(
                {"error": "internal_error", "detail": "Something went wrong, try again.", "request_id": rid},
                status_code=500,
            )
            await response(scope, receive, send_with_id)
        finally:
            reset_request(token)


def create_app(
    rt: Runtime,
    *,
    mount_simulator: bool = False,
    run_worker: bool = False,
    with_scheduler: bool = False,
    with_bot: bool = False,
) -> FastAPI:
    mounted: list[Any] = []  # simulators mounted below, closed at shutdown (a mount's lifespan never runs)
    bot_runner = None
    if with_bot and rt.settings.TELEGRAM_BOT_TOKEN:
        from web.telegram import BotRunner

        bot_runner = BotRunner(rt.settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []
        if run_worker:
            # One process owns the in-process broker (serve): what the previous one sent is gone.
            if recovered := await rt.jobs.recover_in_process():
                log.info("resending %d unfinished jobs from before the restart", recovered)
            rt.jobs.start_worker()
        if with_scheduler:
            relay_every = 1.0 if rt.jobs.in_process else 5.0
            tasks.append(
                asyncio.create_task(run_scheduler(rt, periodic_jobs(rt), relay_every=relay_every, stop=stop))
            )
        if bot_runner is not None:
            await bot_runner.start()
        settle_heap()
        try:
            yield
        finally:
            if bot_runner is not None:
                await bot_runner.stop()
            stop.set()
            for t in tasks:
                await t
            if run_worker:
                await asyncio.to_thread(rt.jobs.stop_worker)
            for sim in mounted:
                await sim.aclose()
            await rt.aclose()

    app = FastAPI(
        title="lipapush",
        version="0.1.0",
        description="Collect M-Pesa payments into your own Till or Paybill. Authenticate with "
        "`Authorization: Bearer <API key or login token>`.",
        lifespan=lifespan,
        # The default pages load their scripts from a CDN; install_docs serves /docs without one.
        docs_url=None,
        redoc_url=None,
        # Every route: text no database can store is refused by field before any handler reads it.
        dependencies=[Depends(refuse_unstorable_body)],
    )
    install_docs(app)
    install_guides(app)
    install_webhook_docs(app)
    install_error_handlers(app)
    app.state.bot_runner = bot_runner

    # Innermost of ours: the request id is set for everything the route does, and on its answer.
    app.add_middleware(RequestContext)

    # Outermost of our middleware: a body over its route's limit is refused before anything reads it.
    app.add_middleware(LimitRequestBody, limits=BodyLimits.from_settings(rt.settings))
    # Outside even that: the API request log sees every answer, a 413 included (core/usage).
    install_usage_log(app, rt)
    # AI agents' tools at /mcp (web/mcp): after the usage log, whose recorder counts their calls.
    install_mcp(app, rt)

    # Every /api route declares the errors it can answer, in their one shape (web/openapi.py).
    api = APIRouter(prefix="/api", responses=API_ERRORS)
    for module in (
        auth,
        payments,
        customers,
        settings,
        channels,
        dashboard,
        wallet,
        hotspot,
        subscriptions,
        admin_hotspot,
        apps,
        webhooks,
        plans,
        usage,
        payouts,
        payout_batches,
        payout_grant,
        lookups,
        c2b,
        reversals,
        activity,
    ):
        api.include_router(module.router)
    # Daraja's callbacks before the API: their paths share no prefix with it, and a router is matched by
    # walking its routes, so after it every callback paid for a miss on each of the API's routes (one
    # callback per push: bench/push_throughput.py).
    # Before the generic /callbacks/daraja/{token}/{kind}: the validation URL answers in the request.
    app.include_router(c2b_validation_router)
    app.include_router(callbacks_router)
    # USSD before the API and the panel too: Africa's Talking waits on every hop, and matching /ussd
    # after them cost ~0.8 ms of CPU a hop (bench/ussd_latency.py). Its paths are its own.
    app.include_router(ussd_router())
    app.include_router(api)
    app.include_router(captive_router, responses=API_ERRORS)
    install_panel(app)
    if bot_runner is not None and bot_runner.webhook:
        from web.telegram import webhook_router

        app.include_router(
            webhook_router(secret=rt.settings.TELEGRAM_WEBHOOK_SECRET or "", feed=bot_runner.feed)
        )

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        async with unit_of_work(readonly=True, scope=Scope.none()) as session:  # reads no business's rows
            await session.execute(text("SELECT 1"))
        return {"status": "ok"}

    if mount_simulator:
        from sim.daraja import create_app as create_daraja_sim

        daraja_sim = create_daraja_sim(callback_delay=rt.settings.SIM_CALLBACK_DELAY)
        app.mount("/sim/daraja", daraja_sim)
        mounted.append(daraja_sim.state.daraja_sim)
        if not rt.settings.PESAPAL_BASE_URL:
            from sim.pesapal import create_app as create_pesapal_sim

            app.mount("/sim/pesapal", create_pesapal_sim())
    return app
