"""Inbound Daraja callbacks. Store first, answer 200 at once, process in a job."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from sqlalchemy.exc import IntegrityError

from core.db import Scope
from core.errors import InvalidInput, NotFound
from core.exports.links import downloads_dir, resolve
from core.exports.xlsx import XLSX_MEDIA_TYPE
from core.mpesa_inbox import service as inbox
from core.mpesa_inbox.jobs import process_answer
from core.mpesa_inbox.kinds import CallbackKind
from core.notify.service import notify
from core.payments.callbacks import MAX_BODY, callbacks
from core.payments.jobs import process_callback
from core.runtime import runtime, unit_of_work
from core.tenants.service import tenants

router = APIRouter(tags=["callbacks"], include_in_schema=False)
DARAJA_CALLBACK = Scope.platform("Daraja callback")


@router.post("/callbacks/daraja/{token}")
async def daraja_callback(token: str, request: Request) -> JSONResponse:
    if len(token) > 64:
        return JSONResponse({"ResultCode": 1, "ResultDesc": "Unknown callback URL"}, status_code=404)
    # The token first, in its own short read: a made-up URL is refused without reading its body, and
    # no database connection is held while a known sender's body arrives (web/limits.py caps it).
    # Which business a callback is for is what its URL token says: found across tenants.
    channel_id = tenants.remembered_channel_id(token)
    if channel_id is None:
        async with unit_of_work(readonly=True, scope=DARAJA_CALLBACK) as session:
            channel_id = await tenants.channel_id_by_token(session, token)
    if channel_id is None:
        raise NotFound("Unknown callback URL.")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise InvalidInput("body", "Callback body too large.")
    try:
        async with unit_of_work(scope=DARAJA_CALLBACK) as session:
            await callbacks.ingest(
                session,
                token=token,
                body=body,
                remote_addr=request.client.host if request.client else None,
                job=process_callback,
                channel_id=channel_id,
            )
    except IntegrityError:
        # The remembered channel was deleted (with its business) since: forget it, and say so.
        tenants.forget_token(token)
        raise NotFound("Unknown callback URL.") from None
    return JSONResponse({"ResultCode": 0, "ResultDesc": "Accepted"})


@router.post("/callbacks/at/delivery")
async def sms_delivery_report(
    id: Annotated[str, Form()] = "",
    status: Annotated[str, Form()] = "",
    failureReason: Annotated[str | None, Form()] = None,
    secret: Annotated[str | None, Query()] = None,
) -> PlainTextResponse:
    """Africa's Talking delivery report for one SMS. Reports are unsigned: a report only moves a
    message we sent (matched on the gateway's unguessable message id) towards a final state, and
    with AT_CALLBACK_SECRET set it must also carry ?secret=."""
    expected = runtime().settings.AT_CALLBACK_SECRET
    if expected is not None and not (secret and hmac.compare_digest(secret.encode(), expected.encode())):
        return PlainTextResponse("forbidden", status_code=403)
    if not id or len(id) > 64 or not status or len(status) > 40:
        return PlainTextResponse("missing id or status", status_code=400)
    async with unit_of_work(scope=Scope.platform("Africa's Talking delivery report")) as session:
        await notify.delivery_report(
            session, message_id=id, status=status, failure_reason=(failureReason or "")[:200] or None
        )
    return PlainTextResponse("ok")


@router.get("/dl/{token}")
async def download(token: str) -> Response:
    """A signed export link sent by SMS (core.exports.links)."""
    s = runtime().settings
    path = resolve(s.SECRET_KEY, downloads_dir(s.EXPORT_DIR), token)
    if path is None:
        return PlainTextResponse(
            "This download link has expired or is not valid. Request the export again.", status_code=404
        )
    return FileResponse(path, filename=path.name, media_type=XLSX_MEDIA_TYPE)


@router.post("/callbacks/daraja/{token}/{kind}")
async def daraja_answer(token: str, kind: str, request: Request) -> JSONResponse:
    """A Result or QueueTimeOut of a payout, a lookup or a reversal, or a C2B confirmation: stored,
    answered, applied in a job (core.mpesa_inbox). The C2B validation URL, which must answer at once,
    has its own route (web/callbacks_c2b.py)."""
    try:
        answer = CallbackKind(kind)
    except ValueError:
        answer = None
    if len(token) > 64 or answer is None or answer is CallbackKind.stk:
        return JSONResponse({"ResultCode": 1, "ResultDesc": "Unknown callback URL"}, status_code=404)
    async with unit_of_work(readonly=True, scope=DARAJA_CALLBACK) as session:
        known = await tenants.get_channel_by_token(session, token) is not None
    if not known:
        raise NotFound("Unknown callback URL.")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise InvalidInput("body", "Callback body too large.")
    async with unit_of_work(scope=DARAJA_CALLBACK) as session:
        channel = await tenants.get_channel_by_token(session, token)
        if channel is None:  # removed in the moment since
            raise NotFound("Unknown callback URL.")
        await inbox.ingest(
            session,
            channel=channel,
            kind=answer,
            body=body,
            remote_addr=request.client.host if request.client else None,
            job=process_answer,
        )
    if answer is CallbackKind.c2b_confirmation:
        return JSONResponse({"ResultCode": 0, "ResultDesc": "Success"})
    return JSONResponse({"ResultCode": 0, "ResultDesc": "Accepted"})
