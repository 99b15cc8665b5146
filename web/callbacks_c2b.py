"""The C2B validation URL: Daraja waits for its answer (about 8 s), so it is answered in the request,
not through the inbox (core.c2b.validation decides and records; nothing here calls Daraja)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from core.c2b import validation
from core.c2b.service import VALIDATION_PATH
from core.errors import InvalidInput, NotFound

router = APIRouter(tags=["callbacks"], include_in_schema=False)


@router.post(f"/callbacks/daraja/{{token}}/{VALIDATION_PATH}")
async def c2b_validation(token: str, request: Request) -> JSONResponse:
    if len(token) > 64:
        raise NotFound("Unknown callback URL.")
    body = await request.body()
    if len(body) > validation.MAX_BODY:
        raise InvalidInput("body", "Callback body too large.")
    reply = await validation.answer(token=token, body=body)
    if reply is None:
        raise NotFound("Unknown callback URL.")
    return JSONResponse(reply)
