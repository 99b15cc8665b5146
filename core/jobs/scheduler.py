"""Periodic work: relay the job outbox and enqueue the reconciliation sweep.

Run exactly one scheduler per deployment (`lipapush scheduler`, or inside `lipapush serve`). Running
two is harmless (every periodic job is idempotent), just wasteful.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from core.db import Scope
from core.jobs.registry import JobSpec, enqueue
from core.runtime import Runtime, unit_of_work

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Periodic:
    job: JobSpec
    every: float


async def run_scheduler(
    rt: Runtime, periodic: list[Periodic], *, relay_every: float, stop: asyncio.Event
) -> None:
    last: dict[str, float] = {}
    last_relay = 0.0
    while not stop.is_set():
        now = time.monotonic()
        try:
            if now - last_relay >= relay_every:
                last_relay = now
                await rt.jobs.relay()
            due = [p for p in periodic if now - last.get(p.job.name, 0.0) >= p.every]
            if due:
                # Only the job outbox is written: no business's rows.
                async with unit_of_work(scope=Scope.none()) as session:
                    for p in due:
                        await enqueue(session, p.job)
                for p in due:
                    last[p.job.name] = now
        except Exception:
            log.exception("scheduler tick failed; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=min(0.5, relay_every))
