"""More for driving /mcp in tests: a client that remembers the HTTP status of every answer (a refused
key surfaces in the SDK only as a generic error), tool refusals split into code and text, paid
payments, row counts, and the owner's reversal code."""

from __future__ import annotations

import contextlib
import random
import re
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from sqlalchemy import func, select
from sqlalchemy.sql.elements import ColumnElement

from core.access.permissions import ApiScope
from core.audit.models import AuditLog
from core.auth.models import ApiKey
from core.auth.tokens import hash_api_key
from core.notify.models import Notification, NotifyChannel
from core.runtime import unit_of_work
from core.tenants.models import Tenant
from tests.mcp.support import Mode, call, text_of
from tests.support.factories import make_api_key
from tests.support.waiting import wait_until

ERROR_CODE = re.compile(r"\(error: ([a-z_]+)\)")


@dataclass
class Agent:
    """An SDK client session and the HTTP status of each answer /mcp gave it, in order."""

    client: Client
    statuses: list[int] = field(default_factory=list)


@contextlib.asynccontextmanager
async def agent_session(url: str, key: str, *, mode: Mode = "auto") -> AsyncIterator[Agent]:
    statuses: list[int] = []

    async def remember(response: httpx2.Response) -> None:
        statuses.append(response.status_code)

    async with (
        httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {key}"},
            timeout=httpx2.Timeout(90.0),
            event_hooks={"response": [remember]},
        ) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http), mode=mode) as client,
    ):
        yield Agent(client, statuses)


@dataclass(frozen=True)
class Refusal:
    code: str
    text: str


async def refusal(client: Client, name: str, arguments: dict[str, Any] | None = None) -> Refusal:
    """A call expected to fail: its error code (from the text's "(error: <code>)") and its text."""
    result = await client.call_tool(name, arguments or {})
    text = text_of(result)
    assert result.is_error, f"{name} succeeded: {str(result.structured_content)[:300]}"
    found = ERROR_CODE.findall(text)
    assert found, f"{name}'s error names no code: {text}"
    return Refusal(found[-1], text)


def a_phone(last4: str = "0111") -> str:
    """A Safaricom number ending `last4` (the simulator's magic endings: 0111 pays, 1032 declines)."""
    return f"0722{random.randint(0, 99):02d}{last4}"


def msisdn(phone: str) -> str:
    return "254" + phone[1:]


async def all_scopes_key(tenant: Tenant) -> str:
    return await make_api_key(tenant=tenant, scopes=list(ApiScope))


async def paid_payment(client: Client, phone: str | None = None, amount: int = 100) -> dict[str, Any]:
    """A payment requested through the tool and paid on the simulator."""
    pending = await call(
        client,
        "request_payment",
        {"phone": phone or a_phone(), "amount": amount, "idempotency_key": uuid.uuid4().hex},
    )
    done = await call(client, "wait_for_payment", {"payment_id": pending["id"], "timeout_seconds": 30})
    assert done["status"] == "success", done
    return done


async def count(model: Any, *where: ColumnElement[bool]) -> int:
    async with unit_of_work(readonly=True) as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def audit_actions(tenant_id: uuid.UUID) -> list[str]:
    async with unit_of_work(readonly=True) as session:
        rows = await session.scalars(
            select(AuditLog.action).where(AuditLog.tenant_id == tenant_id).order_by(AuditLog.id)
        )
        return list(rows)


async def key_id(key: str) -> uuid.UUID:
    async with unit_of_work(readonly=True) as session:
        found = await session.scalar(select(ApiKey.id).where(ApiKey.key_hash == hash_api_key(key)))
    assert found is not None
    return found


async def login(client: httpx.AsyncClient, email: str, password: str = "secret-pass-1") -> dict[str, str]:
    r = await client.post("/api/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def reversal_codes(tenant_id: uuid.UUID) -> list[str]:
    """The 6-digit reversal codes emailed to the business's owner, oldest first."""
    async with unit_of_work(readonly=True) as session:
        bodies = await session.scalars(
            select(Notification.body)
            .where(
                Notification.tenant_id == tenant_id,
                Notification.kind == "reversal.code",
                Notification.channel == NotifyChannel.email,
            )
            .order_by(Notification.id)
        )
        found = [re.search(r"is (\d{6})\.", body or "") for body in bodies]
    return [m.group(1) for m in found if m]


async def poll(
    client: Client, name: str, arguments: dict[str, Any], *, until: Iterable[str]
) -> dict[str, Any]:
    """Call a reading tool until its `status` is one of `until` (a deadline, not a timing assertion)."""
    wanted = set(until)
    last: dict[str, Any] = {}

    async def reached() -> bool:
        nonlocal last
        last = await call(client, name, arguments)
        return last["status"] in wanted

    await wait_until(reached, interval=0.2)
    return last
