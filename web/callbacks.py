"""Inbound Daraja callbacks. Store first, answer 200 at once, process in a job."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from core.errors import InvalidInput
from core.payments.callbacks import MAX_BODY, callbacks
from core.payments.jobs import process_callback
from core.runtime import unit_of_work

router = APIRouter(tags=["callbacks"], include_in_schema=False)


@router.post("/callbacks/daraja/{token}")
async def daraja_callback(token: str, request: Request) -> JSONResponse:
    if len(token) > 64:
        return JSONResponse({"ResultCode": 1, "ResultDesc": "Unknown callback URL"}, status_code=404)
    body = await request.body()
    if len(body) > MAX_BODY:
        raise InvalidInput("body", "Callback body too large.")
    async with unit_of_work() as session:
        await callbacks.ingest(
            session,
            token=token,
            body=body,
            remote_addr=request.client.host if request.client else None,
            job=process_callback,
        )
    return JSONResponse({"ResultCode": 0, "ResultDesc": "Accepted"})
