"""Text Postgres cannot store (NUL, and lone UTF-16 surrogates, which no UTF-8 can carry) is refused
where it enters, in each entry point's own form: a 422 naming the field in the JSON envelope for the
API and the callbacks, an error page for the panel, a rejected inbox row for a Daraja callback. Never a
500, never stored, never an internal error in the log."""

from __future__ import annotations

import json
import logging
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from core.payments.models import CallbackInbox, Payment
from core.runtime import unit_of_work
from tests.conftest import LiveServer
from tests.core.payments.test_callbacks import pending_payment, success_body
from tests.core.payments.test_late_callbacks import callback_url
from tests.support.factories import make_api_key, make_tenant
from tests.web.test_panel_pay import send, signed_in


def nul(where: str) -> str:
    return f"{where} contains a NUL character (\\u0000), which cannot be stored: remove it and try again."


def surrogate(where: str) -> str:
    return (
        f"{where} contains an unpaired UTF-16 surrogate (\\ud800-\\udfff), which is not valid text: "
        "send it as UTF-8 and try again."
    )


def refused(field: str, message: str) -> dict[str, object]:
    return {"error": "invalid_input", "detail": message, "errors": {field: message}}


def no_internal_errors(caplog: pytest.LogCaptureFixture) -> None:
    # The session's server runs every test's jobs: another test's router job retrying (RouterBusy) is
    # not this test's error. The only jobs these tests start are payment ones.
    bad = [
        r
        for r in caplog.records
        if r.levelno >= logging.ERROR
        and not (r.name.startswith("dramatiq") and "payments." not in r.getMessage())
    ]
    assert bad == [], [r.getMessage() for r in bad]


async def payments_of(tenant_id: uuid.UUID) -> int:
    async with unit_of_work(readonly=True) as session:
        n = await session.scalar(
            select(func.count()).select_from(Payment).where(Payment.tenant_id == tenant_id)
        )
        return int(n or 0)


async def push(client: httpx.AsyncClient, key: str, body: str) -> httpx.Response:
    return await client.post(
        "/api/stk-push",
        content=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )


class TestApi:
    @pytest.mark.parametrize(
        ("raw", "message"),
        [
            ('"Wanjiru\\u0000"', nul("Field 'name'")),
            ('"Wanjiru\\ud800"', surrogate("Field 'name'")),
            ('"\\udc00Wanjiru"', surrogate("Field 'name'")),
        ],
        ids=["nul", "high-surrogate", "low-surrogate"],
    )
    async def test_json_field_is_refused_by_name(
        self, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, raw: str, message: str
    ) -> None:
        tenant, _ = await make_tenant()
        key = await make_api_key(tenant=tenant)
        r = await push(client, key, '{"phone": "0722000111", "amount": 10, "name": ' + raw + "}")
        assert (r.status_code, r.json()) == (422, refused("name", message))
        assert await payments_of(tenant.id) == 0
        no_internal_errors(caplog)

    async def test_nested_field_and_key_are_named_by_their_path(self, client: httpx.AsyncClient) -> None:
        tenant, _ = await make_tenant()
        key = await make_api_key(tenant=tenant)
        r = await push(client, key, '{"phone": "0722000111", "amount": 10, "x": [{"y": "\\u0000"}]}')
        assert (r.status_code, r.json()) == (422, refused("x.0.y", nul("Field 'x.0.y'")))
        r = await push(client, key, '{"phone": "0722000111", "amount": 10, "a\\ud800": 1}')
        assert (r.status_code, r.json()) == (422, refused("a\ufffd", surrogate("Field 'a\ufffd'")))

    async def test_a_paired_surrogate_and_an_escaped_backslash_are_plain_text(
        self, client: httpx.AsyncClient
    ) -> None:
        # "\\u0000" is the six characters \u0000; "\ud83d\ude00" is one emoji: both store fine.
        tenant, _ = await make_tenant()
        key = await make_api_key(tenant=tenant)
        r = await push(
            client, key, '{"phone": "0722000111", "amount": 10, "name": "a\\\\u0000b \\ud83d\\ude00"}'
        )
        assert r.status_code == 201, r.text

    async def test_query_parameter_is_refused_by_name(
        self, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        tenant, _ = await make_tenant()
        key = await make_api_key(tenant=tenant)
        r = await client.get("/api/transactions?phone=0722%00", headers={"Authorization": f"Bearer {key}"})
        assert (r.status_code, r.json()) == (422, refused("phone", nul("Query parameter 'phone'")))
        r = await client.get("/api/transactions?%00=1", headers={"Authorization": f"Bearer {key}"})
        assert (r.status_code, r.json()) == (422, refused("query", nul("A query parameter's name")))
        # %2500 is the text "%00": nothing to refuse.
        r = await client.get("/api/transactions?phone=%2500", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200, r.text
        no_internal_errors(caplog)

    @pytest.mark.parametrize(
        "path", ["/callbacks/daraja/ab%00cd", "/static/%00.css", "/dl/%00", "/api/tickets/A%00/status"]
    )
    async def test_path_with_nul_is_refused(
        self, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, path: str
    ) -> None:
        r = await client.post(path, content=b"{}") if "daraja" in path else await client.get(path)
        assert (r.status_code, r.json()) == (422, refused("path", nul("The URL path")))
        no_internal_errors(caplog)

    async def test_form_field_of_a_delivery_report_is_refused(
        self, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        r = await client.post("/callbacks/at/delivery", data={"id": "ATXid_\x00", "status": "Success"})
        assert (r.status_code, r.json()) == (422, refused("id", nul("Field 'id'")))
        no_internal_errors(caplog)

    async def test_pesapal_notification_is_refused(
        self, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        r = await client.post(
            "/api/payments/pesapal/webhook",
            content='{"OrderTrackingId": "\\u0000"}',
            headers={"Content-Type": "application/json"},
        )
        assert (r.status_code, r.json()) == (422, refused("OrderTrackingId", nul("Field 'OrderTrackingId'")))
        r = await client.get("/api/payments/pesapal/webhook?OrderTrackingId=%00")
        assert r.status_code == 422, r.text
        no_internal_errors(caplog)

    async def test_captive_portal_body_is_refused(self, client: httpx.AsyncClient) -> None:
        r = await client.post(
            f"/api/captive/{uuid.uuid4()}/initiate-mpesa",
            content='{"phone": "0722\\u0000000111"}',
            headers={"Content-Type": "application/json"},
        )
        assert (r.status_code, r.json()) == (422, refused("phone", nul("Field 'phone'")))


class TestPanel:
    async def test_form_field_gets_the_error_page_and_nothing_is_sent(
        self, server: LiveServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        tenant, owner = await make_tenant()
        async with signed_in(server, owner) as panel:
            r = await send(panel, {"phone": "0722000111", "amount": "10", "name": "Wan\x00jiru"})
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("text/html")
        assert "Field &#39;name&#39; contains a NUL character (\\u0000)" in r.text
        assert await payments_of(tenant.id) == 0
        no_internal_errors(caplog)


class TestDarajaCallback:
    @pytest.mark.parametrize(
        ("checkout", "error"),
        [
            (
                b'"ws_CO_\\u0000nul"',
                "callback Body.stkCallback.CheckoutRequestID holds text no database can store "
                "(NUL or a lone surrogate)",
            ),
            (
                b'"ws_CO_\\ud800lone"',
                "callback Body.stkCallback.CheckoutRequestID holds text no database can store "
                "(NUL or a lone surrogate)",
            ),
            (b'"ws_CO_\x00raw"', "callback body holds a NUL byte, which no database can store"),
        ],
        ids=["escaped-nul", "lone-surrogate", "raw-nul"],
    )
    async def test_unstorable_checkout_id_is_kept_and_rejected(
        self,
        server: LiveServer,
        client: httpx.AsyncClient,
        caplog: pytest.LogCaptureFixture,
        checkout: bytes,
        error: str,
    ) -> None:
        p = await pending_payment(checkout=f"ws_CO_clean_{uuid.uuid4().hex[:8]}", amount=60)
        marker = uuid.uuid4().hex
        body = success_body("@@CID@@", amount=60, phone=254722000111, receipt="UKN1NUL001")
        body = body.replace(b'"@@CID@@"', checkout).replace(b"processed successfully", marker.encode())
        r = await client.post(await callback_url(p.tenant_id), content=body)
        assert (r.status_code, r.json()) == (200, {"ResultCode": 0, "ResultDesc": "Accepted"})

        async with unit_of_work(readonly=True) as session:
            row = await session.scalar(select(CallbackInbox).where(CallbackInbox.payload.contains(marker)))
        assert row is not None
        assert (row.checkout_request_id, row.outcome, row.error) == (None, "rejected", error)
        assert row.processed_at is not None
        assert row.payload == body.decode().replace("\x00", "\ufffd")
        if b"\x00" not in body:
            assert json.loads(row.payload)["Body"]["stkCallback"]["ResultDesc"].endswith(f"{marker}.")
        no_internal_errors(caplog)

    async def test_a_stored_row_with_unstorable_text_is_rejected_by_the_job(self, server: LiveServer) -> None:
        # A row stored before the check existed: the job rejects it instead of failing in a query.
        from tests.core.payments.test_callbacks import process, store

        cid = f"ws_CO_job_{uuid.uuid4().hex[:8]}"
        p = await pending_payment(checkout=cid, amount=60)
        body = success_body(cid, amount=60, phone=254722000111, receipt="UKN1NUL002")
        body = body.replace(b'"PhoneNumber", "Value": 254722000111', b'"PhoneNumber", "Value": "2547\\u0000"')
        assert b"\\u0000" in body
        assert await process(await store(p, body)) == "rejected"
        async with unit_of_work(readonly=True) as session:
            still = await session.get(Payment, p.id)
        assert still is not None and (still.status.value, still.paid_phone) == ("pending", None)


class TestSecretsThatAreNotAscii:
    """`hmac.compare_digest` raises TypeError for a str holding anything but ASCII: a typed or forged
    secret like that is a wrong secret, never a 500."""

    async def test_panel_csrf_token(self, server: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
        tenant, owner = await make_tenant()
        async with signed_in(server, owner) as panel:
            r = await panel.post("/app/pay", data={"phone": "0722000111", "amount": "10", "csrf_token": "é"})
            assert r.status_code == 403, r.text
            r = await panel.post("/app/pay", data={"amount": "10"}, headers={"X-CSRF-Token": "ñ".encode()})
            assert r.status_code == 403, r.text
        assert await payments_of(tenant.id) == 0
        no_internal_errors(caplog)

    async def test_sign_in_form_csrf_token(
        self, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        await client.get("/login")
        r = await client.post("/login", data={"email": "a@example.com", "password": "x", "csrf_token": "é"})
        assert r.status_code == 403, r.text
        assert "This sign-in form has expired" in r.text
        no_internal_errors(caplog)

    async def test_delivery_report_secret(
        self, server: LiveServer, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(server.settings, "AT_CALLBACK_SECRET", "at-secret-0001")
        r = await client.post("/callbacks/at/delivery?secret=%C3%A9", data={"id": "x", "status": "Success"})
        assert (r.status_code, r.text) == (403, "forbidden")


class TestCommandLine:
    def test_an_argument_that_is_not_utf8_is_refused_before_any_command_runs(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        from web.cli import main

        # What Python makes of the bytes `Duka\xff` on the command line (PEP 383).
        name = b"Duka\xff".decode("utf-8", "surrogateescape")
        monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
        argv = ["lipapush", "tenant", "create", "--name", name, "--email", "a@example.com"]
        monkeypatch.setattr(sys, "argv", [*argv, "--phone", "0712345678", "--password", "secret-pass-1"])
        with pytest.raises(SystemExit) as exit_:
            main()
        assert exit_.value.code == 2
        assert capsys.readouterr().err.strip() == (
            "Argument 4 is not valid UTF-8 text: retype it, or use a UTF-8 locale (LANG=C.UTF-8)."
        )
        assert not (tmp_path / "cli.db").exists()
