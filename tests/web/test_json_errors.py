"""A body that is not a JSON object is answered with what was wrong and how to send it, in the usual
error envelope, instead of FastAPI's `0: JSON decode error`."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import LiveServer
from tests.support.factories import make_api_key, make_tenant

SEND_JSON = "Send a JSON object with Content-Type: application/json."


@pytest.fixture(scope="module")
async def key(server: LiveServer) -> str:
    tenant, _ = await make_tenant(name="Json Duka")
    return await make_api_key(tenant=tenant)


async def post(client: httpx.AsyncClient, key: str, body: str, content_type: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    if content_type:
        headers["Content-Type"] = content_type
    return await client.post("/api/stk-push", content=body, headers=headers)


@pytest.mark.parametrize(
    ("body", "content_type", "reason", "detail"),
    [
        (
            "phone=1",
            "application/json",
            "Not valid JSON (Expecting value at line 1 column 1).",
            f"The request body is not valid JSON (Expecting value at line 1 column 1). {SEND_JSON}",
        ),
        (
            '{"phone": "0722000111",\n "amount": }',
            "application/json; charset=utf-8",
            "Not valid JSON (Expecting value at line 2 column 12).",
            f"The request body is not valid JSON (Expecting value at line 2 column 12). {SEND_JSON}",
        ),
        (
            "{'phone': '0722000111'}",
            "application/json",
            "Not valid JSON (Expecting property name enclosed in double quotes at line 1 column 2).",
            "The request body is not valid JSON (Expecting property name enclosed in double quotes at "
            f"line 1 column 2). {SEND_JSON}",
        ),
        (  # curl -d phone=1
            "phone=1",
            "application/x-www-form-urlencoded",
            "Not JSON (Content-Type: application/x-www-form-urlencoded).",
            "The request body was not sent as JSON (Content-Type: application/x-www-form-urlencoded). "
            f"{SEND_JSON}",
        ),
        (
            '{"phone": "0722000111", "amount": 150}',
            None,
            "Not JSON (Content-Type: none).",
            f"The request body was not sent as JSON (Content-Type: none). {SEND_JSON}",
        ),
        (
            '[{"phone": "0722000111", "amount": 150}]',
            "application/json",
            "Must be a JSON object, not an array.",
            f"The request body must be a JSON object ({{...}}), not an array. {SEND_JSON}",
        ),
        (
            "150",
            "application/json",
            "Must be a JSON object, not a number.",
            f"The request body must be a JSON object ({{...}}), not a number. {SEND_JSON}",
        ),
        (
            "",
            "application/json",
            "The request body is empty.",
            f"The request body is empty. {SEND_JSON}",
        ),
    ],
    ids=[
        "form-as-json",
        "multi-line",
        "single-quotes",
        "form",
        "no-content-type",
        "array",
        "number",
        "empty",
    ],
)
async def test_body_that_is_not_a_json_object(
    client: httpx.AsyncClient, key: str, body: str, content_type: str | None, reason: str, detail: str
) -> None:
    r = await post(client, key, body, content_type)
    assert r.status_code == 422
    assert r.json() == {"error": "invalid_input", "detail": detail, "errors": {"body": reason}}


async def test_field_errors_keep_their_names(client: httpx.AsyncClient, key: str) -> None:
    r = await post(client, key, '{"phone": "0722000111"}', "application/json")
    assert r.status_code == 422
    assert r.json() == {
        "error": "invalid_input",
        "detail": "amount: This field is required.",
        "errors": {"amount": "This field is required."},
    }
