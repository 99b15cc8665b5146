"""Secrets stay secret: the channel's consumer key/secret and passkey are masked in every API answer,
absent from exports, and neither they, API keys, login tokens nor callback tokens reach the serve log."""

from __future__ import annotations

import io
import secrets
import zipfile
from typing import Any

import httpx

from tests.e2e.conftest import (
    SANDBOX_PASSKEY,
    SANDBOX_SHORT_CODE,
    NewBusiness,
    Serve,
    bearer,
    push,
    unique_email,
    unique_phone,
    wait_final,
    wait_for,
)
from tests.e2e.conftest import Business as Biz


def xlsx_text(content: bytes) -> str:
    """Every part of the workbook (sheets, shared strings, properties) as text."""
    with zipfile.ZipFile(io.BytesIO(content)) as z:
        return "\n".join(z.read(name).decode("utf-8", errors="replace") for name in z.namelist())


async def test_channel_secrets_are_masked_and_never_leak(serve: Serve, http: httpx.AsyncClient) -> None:
    consumer_key = "ck" + secrets.token_hex(16)
    consumer_secret = "cs" + secrets.token_hex(16)
    secret_values = {
        "consumer key": consumer_key,
        "consumer secret": consumer_secret,
        "passkey": SANDBOX_PASSKEY,
    }
    email, password = unique_email("secrets"), "pass-" + secrets.token_hex(6)
    responses: list[httpx.Response] = []

    r = await http.post(
        "/api/signup",
        json={
            "business_name": "Siri Traders",
            "email": email,
            "password": password,
            "phone": unique_phone("5678"),
        },
    )
    assert r.status_code == 201, r.text
    jwt = r.json()["access_token"]
    r = await http.post(
        "/api/settings",
        json={
            "environment": "simulator",
            "kind": "paybill",
            "business_short_code": SANDBOX_SHORT_CODE,
            "consumer_key": consumer_key,
            "consumer_secret": consumer_secret,
            "passkey": SANDBOX_PASSKEY,
        },
        headers=bearer(jwt),
    )
    assert r.status_code == 200, r.text
    responses.append(r)
    saved = r.json()
    assert saved["verification_error"] is None
    assert (
        saved["channel"]
        | {
            "consumer_key": "****" + consumer_key[-4:],
            "consumer_secret": "****" + consumer_secret[-4:],
            "passkey": "****" + SANDBOX_PASSKEY[-4:],
        }
        == saved["channel"]
    )

    async def verified() -> dict[str, Any] | None:
        s = await http.get("/api/settings", headers=bearer(jwt))
        responses.append(s)
        body: dict[str, Any] = s.json()
        assert body["channel"]["verification_error"] is None, body
        return body if body["channel"]["verified"] else None

    settings = await wait_for(verified, what="channel verified with explicit credentials")
    assert settings["business"]["status"] == "active"
    assert settings["channel"]["consumer_secret"] == "****" + consumer_secret[-4:]
    assert settings["channel"]["passkey"] == "****" + SANDBOX_PASSKEY[-4:]

    r = await http.post("/api/api-keys", json={"name": "leak check"}, headers=bearer(jwt))
    assert r.status_code == 201, r.text
    key = r.json()["key"]
    serve.api_keys.append(key)
    r = await http.get("/api/api-keys", headers=bearer(jwt))
    responses.append(r)
    assert key not in r.text
    assert [k["prefix"] for k in r.json()] == [key[:12]]

    biz = Biz(
        name="Siri Traders", email=email, password=password, phone="", key=key,
        slug=settings["business"]["slug"], tenant_id=settings["business"]["id"],
        callback_url=settings["channel"]["callback_url"],
    )  # fmt: skip
    pushed = await push(http, biz, phone=unique_phone("8080"), amount=210, name="Siri")
    final = await wait_final(http, biz, pushed["id"])
    assert final["status"] == "success"

    for path in ("/api/settings", "/api/transactions", "/api/customers", "/api/dashboard"):
        r = await http.get(path, headers=bearer(key))
        assert r.status_code == 200, (path, r.text)
        responses.append(r)
    responses.append(await http.get(f"/api/transactions/{pushed['id']}", headers=bearer(key)))
    for response in responses:
        for what, value in secret_values.items():
            assert value not in response.text, f"{what} in the answer to {response.request.url}"

    for path in ("/api/customers/export-excel", "/api/transactions/export-excel"):
        r = await http.get(path, headers=bearer(key))
        assert r.status_code == 200, r.text
        content = xlsx_text(r.content)
        assert "Siri" in content  # the workbook was read: the customer is in it
        for what, value in secret_values.items():
            assert value not in content, f"{what} in {path}"

    log = serve.log()
    assert "/api/stk-push" in log  # the log is being captured
    for what, value in secret_values.items():
        assert value not in log, f"{what} in the serve log"
    for api_key in serve.api_keys:
        assert api_key not in log, f"API key {api_key[:12]}… in the serve log"
        assert api_key[len("lp_live_") :] not in log
    assert jwt not in log, "a login token in the serve log"


async def test_callback_tokens_never_reach_the_serve_log(
    serve: Serve, http: httpx.AsyncClient, api_business: NewBusiness
) -> None:
    """The callback URL is a capability (whoever knows it can post callbacks): it is shown to its owner
    in GET /api/settings, and must not be written to the log, including the access log."""
    biz = await api_business(name="Token Shop")  # its verification callback has been delivered

    async def delivered() -> set[str] | None:
        r = await http.get("/sim/daraja/_sim/callbacks")
        urls = {c["url"] for c in r.json() if c["status_code"] == 200}
        return urls if biz.callback_url in urls else None

    urls: set[str] = await wait_for(delivered, what="the verification callback recorded by the simulator")
    log = serve.log()
    assert "POST /callbacks/daraja/" in log  # the access log is captured
    for url in urls:
        token = url.rsplit("/", 1)[-1]
        assert len(token) >= 32
        assert token not in log, f"callback token {token[:6]}… in the serve log"
