"""The OpenAPI document's `webhooks` section (web/openapi_webhooks.py) describes every event lipapush
sends, and the bodies the real delivery path sends match it: a paid, a cancelled, a failed and a
timed-out push and a test event travel to a receiver on loopback, and each verified body is checked
against the schema /openapi.json serves, with no field the schema does not name."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks import Webhook

from core.hotspot.models import VoucherStatus
from core.hotspot.schemas import VoucherOut
from core.webhooks.events import EVENT_TYPES, VOUCHER_ISSUED, WEBHOOK_TEST
from core.webhooks.signing import event_body
from tests.conftest import LiveServer
from tests.support.factories import make_api_key, make_tenant
from tests.support.receiver import receiving
from tests.support.waiting import wait_for_final, wait_until

_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "null": type(None),
    "object": dict,
    "array": list,
}


def problems(spec: dict[str, Any], schema: dict[str, Any], value: Any, where: str = "body") -> list[str]:
    """Where `value` breaks `schema` (the JSON Schema subset FastAPI emits: $ref, type, anyOf, enum,
    const, properties, required, items), also naming every field the schema does not document."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        return problems(spec, spec["components"]["schemas"][name], value, where)
    if "anyOf" in schema:
        tried = [problems(spec, s, value, where) for s in schema["anyOf"]]
        return [] if any(not p for p in tried) else [f"{where}: none of anyOf fits: {tried}"]
    found: list[str] = []
    if "type" in schema:
        expected = _TYPES[schema["type"]]
        if not isinstance(value, expected) or (schema["type"] in ("integer", "number") and value is True):
            return [f"{where}: {value!r} is not {schema['type']}"]
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{where}: {value!r} not in {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        found.append(f"{where}: {value!r} is not {schema['const']!r}")
    if isinstance(value, dict) and "properties" in schema:
        props = schema["properties"]
        found += [f"{where}.{k}: not documented" for k in value if k not in props]
        found += [f"{where}.{k}: required, missing" for k in schema.get("required", []) if k not in value]
        for k, v in value.items():
            if k in props:
                found += problems(spec, props[k], v, f"{where}.{k}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found += problems(spec, schema["items"], item, f"{where}[{i}]")
    return found


def body_schema(spec: dict[str, Any], event_type: str) -> dict[str, Any]:
    schema: dict[str, Any] = spec["webhooks"][event_type]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    return schema


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_every_event_type_is_a_documented_webhook(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.1.")
    hooks = spec["webhooks"]
    assert list(hooks) == [*EVENT_TYPES, WEBHOOK_TEST]
    for event_type, item in hooks.items():
        assert list(item) == ["post"], event_type
        op = item["post"]
        assert op["operationId"] == "webhook_" + event_type.replace(".", "_")
        assert op["description"].startswith(EVENT_TYPES.get(event_type, "Sent only by POST"))
        headers = {p["name"]: p for p in op["parameters"]}
        assert list(headers) == ["webhook-id", "webhook-timestamp", "webhook-signature"], event_type
        assert all(p["in"] == "header" and p["required"] for p in headers.values())
        assert "300 seconds" in headers["webhook-timestamp"]["description"]
        assert "constant time" in headers["webhook-signature"]["description"]
        assert op["requestBody"]["required"] is True
        assert set(op["responses"]) == {"200", "410", "default"}
        schema = spec["components"]["schemas"][body_schema(spec, event_type)["$ref"].rsplit("/", 1)[1]]
        assert schema["properties"]["type"]["const"] == event_type
        assert schema["required"] == (
            ["type", "created_at", "data"]
            if event_type == WEBHOOK_TEST
            else ["type", "created_at", "version", "data"]
        )
    # Every payment event carries the same object, the payment as the API returns it.
    data_refs = {
        spec["components"]["schemas"][body_schema(spec, t)["$ref"].rsplit("/", 1)[1]]["properties"]["data"][
            "$ref"
        ]
        for t in EVENT_TYPES
        if t.startswith("payment.")
    }
    assert data_refs == {"#/components/schemas/PaymentEventData"}
    payment = spec["components"]["schemas"]["PaymentEventData"]
    api_payment = spec["components"]["schemas"]["PaymentOut"]
    assert set(payment["properties"]) == set(api_payment["properties"])
    assert set(payment["required"]) == set(payment["properties"])  # an event always carries every field


async def test_the_real_events_match_their_schemas(server: LiveServer, client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    tenant, _ = await make_tenant()
    key = await make_api_key(tenant=tenant)
    async with receiving() as rec:
        r = await client.post("/api/webhook-endpoints", json={"url": rec.at("/hooks")}, headers=auth(key))
        assert r.status_code == 201, r.text
        endpoint = r.json()
        r = await client.post(f"/api/webhook-endpoints/{endpoint['id']}/test", headers=auth(key))
        assert r.status_code == 202, r.text
        finals = []
        for phone in ("0722000111", "0722001032", "0722002001", "0722001037"):
            r = await client.post("/api/stk-push", json={"phone": phone, "amount": 75}, headers=auth(key))
            assert r.status_code == 201, r.text
            finals.append(await wait_for_final(client, key, r.json()["id"]))
        assert [f["status"] for f in finals] == ["success", "cancelled", "failed", "timeout"]

        async def all_five() -> bool:
            return len(rec.to("/hooks")) >= 5

        await wait_until(all_five, timeout=30)
    events = [Webhook(endpoint["secret"]).verify(req.body, req.headers) for req in rec.to("/hooks")]
    assert sorted(e["type"] for e in events) == sorted(
        ["webhook.test", "payment.succeeded", "payment.cancelled", "payment.failed", "payment.failed"]
    )
    for event in events:
        assert problems(spec, body_schema(spec, event["type"]), event) == [], event
    paid = next(e for e in events if e["type"] == "payment.succeeded")
    assert paid["data"]["id"] == finals[0]["id"] and paid["data"]["receipt"] == finals[0]["receipt"]


async def test_a_voucher_event_matches_its_schema(client: httpx.AsyncClient) -> None:
    """No hotspot sale here: the body is built as core.webhooks.subscribers builds it (the voucher as
    the hotspot API lists it, plus payment_id and mode) and sealed by the real event_body."""
    spec = (await client.get("/openapi.json")).json()
    now = datetime.now(UTC)
    voucher = VoucherOut(
        id=uuid.uuid4(),
        code="KX7P2M",
        status=VoucherStatus.issued,
        plan_name="1 hour",
        price=20,
        validity_minutes=60,
        data_mb=None,
        router_id=uuid.uuid4(),
        phone="254722000111",
        issued_at=now,
        provisioned_at=None,
        activated_at=None,
        expires_at=None,
        last_error=None,
    )
    data = voucher.model_dump(mode="json") | {"payment_id": str(uuid.uuid4()), "mode": "test"}
    event = json.loads(event_body(VOUCHER_ISSUED, data, created_at=now, version=1))
    assert problems(spec, body_schema(spec, VOUCHER_ISSUED), event) == []
    # And the checker does catch a field the schema does not name, or a wrong type.
    event["data"]["surprise"] = 1
    event["version"] = "1"
    assert problems(spec, body_schema(spec, VOUCHER_ISSUED), event) == [
        "body.version: '1' is not integer",
        "body.data.surprise: not documented",
    ]
