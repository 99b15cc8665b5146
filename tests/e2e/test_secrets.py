"""Secrets stay secret: the channel's consumer key/secret and passkey are masked in every API answer,
absent from exports, and neither they, API keys, login tokens nor callback tokens reach the serve log."""

from __future__ import annotations

import asyncio
import io
import secrets
import shutil
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    LIPAPUSH,
    SANDBOX_PASSKEY,
    SANDBOX_SHORT_CODE,
    NewBusiness,
    Serve,
    _base_env,
    _stop,
    _wait_healthy,
    _wait_port,
    bearer,
    push,
    spawn_serve,
    unique_email,
    unique_phone,
    wait_final,
    wait_for,
)
from tests.e2e.conftest import Business as Biz
from tests.support import services


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


@pytest.fixture
def secret_serve() -> Iterator[tuple[Serve, dict[str, str]]]:
    """A serve of our own with every URL-borne secret configured: AT_CALLBACK_SECRET (USSD ?secret=),
    TELEGRAM_WEBHOOK_SECRET (webhook mode: a path segment), a random SECRET_KEY and bot token, and
    its own Telegram stand-in (a webhook on the session's would take the session bot's updates)."""
    try:
        db = services.create_database("e2e-secrets")
    except OSError as exc:
        if services.REQUIRE:
            raise
        pytest.skip(f"TEST_DATABASE_URL is set but Postgres is unreachable: {exc}")
    configured = {
        "AT_CALLBACK_SECRET": "at-" + secrets.token_urlsafe(24),
        "TELEGRAM_WEBHOOK_SECRET": "tg-" + secrets.token_urlsafe(24),
        "SECRET_KEY": "sk-" + secrets.token_urlsafe(36),
        "TELEGRAM_BOT_TOKEN": f"{secrets.randbelow(10**9)}:{secrets.token_urlsafe(24)}",
    }
    workdir = Path(tempfile.mkdtemp(prefix="lipapush-e2e-secrets-"))
    tg_port, port = services.free_port(), services.free_port()
    url = f"http://127.0.0.1:{port}"
    tg_log = (workdir / "telegram-sim.log").open("wb")
    tg_proc = subprocess.Popen(
        [*LIPAPUSH, "sim", "telegram", "--port", str(tg_port)],
        env=_base_env(),
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        stdout=tg_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    env = _base_env()
    env.update(
        configured,
        DATABASE_URL=db.url,
        MIGRATION_DATABASE_URL=db.migration_url,  # serve migrates as the owner
        REDIS_NAMESPACE=services.redis_namespace(),
        SIM_CALLBACK_DELAY="0.3",
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
        COLUMNS="500",
        PUBLIC_BASE_URL=url,
        TELEGRAM_API_BASE=f"http://127.0.0.1:{tg_port}",
    )
    if services.REDIS_URL:
        env["REDIS_URL"] = services.REDIS_URL
    log_path = workdir / "serve.log"
    srv: Serve | None = None
    try:
        _wait_port(tg_port, tg_proc)
        proc = spawn_serve(env, workdir=workdir, port=port, log_path=log_path)
        srv = Serve(
            url=url, env=env, cli_env=env, workdir=workdir, log_path=log_path, db_url=db.url, proc=proc
        )
        _wait_healthy(srv)
        yield srv, configured
    finally:
        if srv is not None:
            _stop(srv.proc)
        _stop(tg_proc)
        tg_log.close()
        services.drop_database(db)
        shutil.rmtree(workdir, ignore_errors=True)


async def test_url_secrets_never_reach_the_serve_log(secret_serve: tuple[Serve, dict[str, str]]) -> None:
    """USSD's ?secret=, the Telegram webhook's path secret, the channel's callback token, SECRET_KEY and
    the bot token, all configured and all used in requests (good, refused and oversize ones): none of
    them appears anywhere in what serve wrote (access log, error log, our own lines)."""
    srv, configured = secret_serve
    at_secret, hook_secret = configured["AT_CALLBACK_SECRET"], configured["TELEGRAM_WEBHOOK_SECRET"]
    async with httpx.AsyncClient(base_url=srv.url, timeout=30) as http:
        r = await http.post(
            "/api/signup",
            json={
                "business_name": "Log Shop",
                "email": unique_email("logs"),
                "password": "pass-" + secrets.token_hex(6),
                "phone": unique_phone("5678"),
            },
        )
        assert r.status_code == 201, r.text
        jwt = r.json()["access_token"]
        r = await http.post("/api/settings", json={"environment": "simulator"}, headers=bearer(jwt))
        assert r.status_code == 200, r.text
        callback_url = r.json()["channel"]["callback_url"]
        token = callback_url.rsplit("/", 1)[-1]

        async def verified() -> bool:
            s = await http.get("/api/settings", headers=bearer(jwt))
            return bool(s.json()["channel"]["verified"])

        await wait_for(verified, what="the channel verified by its own Daraja callback")

        form = {"sessionId": "s-" + secrets.token_hex(6), "phoneNumber": unique_phone("1111"), "text": ""}
        r = await http.post(f"/ussd?secret={at_secret}", data=form)
        assert (r.status_code, r.text[:4]) == (200, "CON "), r.text
        r = await http.post(
            "/ussd/events", params={"secret": at_secret}, data={"sessionId": "s", "status": "Failed"}
        )
        assert r.status_code == 200
        r = await http.post(
            f"/callbacks/at/delivery?secret={at_secret}", data={"id": "ATXid_x", "status": "Success"}
        )
        assert r.status_code == 200
        r = await http.post(f"/ussd?secret={at_secret}&token={at_secret}", content=b"x" * (9 * 1024))
        assert (r.status_code, r.text) == (200, "END This request is too long. Please dial again.")
        r = await http.post(f"/callbacks/at/delivery?secret={at_secret}", content=b"x" * (9 * 1024))
        assert r.status_code == 413

        update = {
            "update_id": 1,
            "message": {
                "message_id": 1,
                "date": int(time.time()),
                "text": "/start",
                "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
                "chat": {"id": 4242, "type": "private", "first_name": "Log"},
                "from": {"id": 4242, "is_bot": False, "first_name": "Log"},
            },
        }
        r = await http.post(
            f"/telegram/webhook/{hook_secret}",
            json=update,
            headers={"X-Telegram-Bot-Api-Secret-Token": hook_secret},
        )
        assert (r.status_code, r.json()) == (200, {"ok": True})
        r = await http.post(f"/telegram/webhook/{hook_secret}x", json=update)  # a wrong one, refused
        assert r.status_code == 401

        cb = {
            "Body": {
                "stkCallback": {"CheckoutRequestID": "ws_CO_" + secrets.token_hex(6), "ResultCode": 1032}
            }
        }
        r = await http.post(callback_url, json=cb)
        assert (r.status_code, r.json()) == (200, {"ResultCode": 0, "ResultDesc": "Accepted"})
        r = await http.post(callback_url, content=b"{" + b" " * (70 * 1024) + b"}")
        assert r.status_code == 413
        r = await http.get(f"/healthz?token={token}&secret={configured['SECRET_KEY']}")
        assert r.status_code == 200

    async def all_logged() -> bool:
        log = srv.log()
        return "GET /healthz?" in log and "/telegram/webhook/****" in log

    await wait_for(all_logged, what="the access log lines of the requests")
    await asyncio.sleep(1.0)  # the bot's handling of the update, and anything it logs, lands too
    log = srv.log()
    assert "POST /ussd?secret=**** " in log  # the access log is captured, and masked
    assert "POST /callbacks/daraja/**** " in log
    for name, value in {**configured, "callback token": token}.items():
        assert value not in log, f"{name} in the serve log"
    assert "unhandled error" not in log
