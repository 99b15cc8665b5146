"""/api/payout-batches: bulk payouts. Upload a file (multipart, field `file`: .xlsx or .csv with
phone, amount, name, reference), read the preview, approve it, follow it, pause, resume, cancel, and
download the result. core/payout_batches decides who may and what is paid."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict

from core.payout_batches import use_cases
from core.payout_batches.schemas import BatchOut
from core.payouts.models import PayoutCommand
from web.deps import CurrentActor
from web.exports import xlsx_response

router = APIRouter(tags=["payout batches"])

COMMANDS = {
    "business": PayoutCommand.business,
    "salary": PayoutCommand.salary,
    "promotion": PayoutCommand.promotion,
}


class ApproveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_duplicates: bool = False


@router.post("/payout-batches", status_code=201)
async def upload(
    actor: CurrentActor,
    file: Annotated[UploadFile, File(description=".xlsx or .csv: a header row naming phone and amount")],
    command: Annotated[str, Form(pattern="^(business|salary|promotion)$")] = "business",
    channel_id: Annotated[uuid.UUID | None, Form()] = None,
) -> BatchOut:
    """A draft batch and its preview: rows to pay, rows refused (row, field, reason) and duplicates
    flagged (within the file, or of the last 24 hours). Nothing is paid until it is approved."""
    data = await file.read()
    return await use_cases.upload_batch(
        actor,
        filename=file.filename or "payouts",
        data=data,
        command=COMMANDS[command],
        channel_id=channel_id,
    )


@router.post("/payout-batches/{batch_id}/approve")
async def approve(batch_id: uuid.UUID, body: ApproveIn, actor: CurrentActor) -> BatchOut:
    """Pay the draft's rows (flagged duplicates only with `include_duplicates`): they go to M-Pesa ten
    at a time; the batch pauses itself if M-Pesa says the account is short of funds."""
    return await use_cases.approve_batch(actor, batch_id, include_duplicates=body.include_duplicates)


@router.post("/payout-batches/{batch_id}/pause")
async def pause(batch_id: uuid.UUID, actor: CurrentActor) -> BatchOut:
    return await use_cases.pause_batch(actor, batch_id)


@router.post("/payout-batches/{batch_id}/resume")
async def resume(batch_id: uuid.UUID, actor: CurrentActor) -> BatchOut:
    """Go on: the queued rows, and rows M-Pesa refused for insufficient funds (sent again under new
    ids; a row is never paid twice)."""
    return await use_cases.resume_batch(actor, batch_id)


@router.post("/payout-batches/{batch_id}/cancel")
async def cancel(batch_id: uuid.UUID, actor: CurrentActor) -> BatchOut:
    """Throw a draft away, or end a paused batch: its queued rows are never sent."""
    return await use_cases.cancel_batch(actor, batch_id)


@router.get("/payout-batches")
async def list_batches(actor: CurrentActor, limit: int = Query(20, ge=1, le=100)) -> list[BatchOut]:
    return await use_cases.list_batches(actor, limit=limit)


@router.get("/payout-batches/{batch_id}")
async def get_batch(batch_id: uuid.UUID, actor: CurrentActor) -> BatchOut:
    return await use_cases.get_batch(actor, batch_id)


@router.get("/payout-batches/{batch_id}/result.xlsx", response_class=StreamingResponse)
async def result(batch_id: uuid.UUID, actor: CurrentActor) -> StreamingResponse:
    """Every row of the file: paid (with the receipt and the name M-Pesa has), failed and why, refused."""
    return xlsx_response(await use_cases.batch_result(actor, batch_id))
