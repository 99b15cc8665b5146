"""`POST /ussd`: Africa's Talking's USSD callback, answered in `text/plain` `CON …` / `END …`.

The gateway shows a generic error (and the user loses the session) on anything but a 200 starting
with CON or END, so every failure, ours included, is answered as an `END` line that says what to do.
"""

from __future__ import annotations

import functools
import hmac
import logging
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from core.errors import InvalidInput
from core.phones import normalize_msisdn
from core.runtime import runtime
from core.text import has_unstorable
from ussd.engine import Engine
from ussd.menu import build_engine
from ussd.sessions import RuntimeStore

log = logging.getLogger(__name__)

MAX_TEXT = 2_000  # far beyond any honest session (40 inputs): cut garbage before parsing it
UNREADABLE = "END This request could not be read. Please dial again."


_URLENCODED = "application/x-www-form-urlencoded"
MAX_FIELDS = 20
_FAST_BODY = 8_192


async def _form(request: Request) -> dict[str, str]:
    """The form's text fields; anything else (files, a JSON body, a broken encoding) reads as empty.

    What the gateway sends (`k=v&k=v`, urlencoded, small) is split here, with the same result as
    Starlette's form parser at a third of its CPU; anything else, an odd shape included, goes to it."""
    ctype = request.headers.get("content-type", "")
    if ctype == _URLENCODED or ctype.startswith(_URLENCODED + ";"):
        body = await request.body()
        if len(body) <= _FAST_BODY:
            pairs = body.split(b"&") if body else []
            if all(b"=" in p for p in pairs):  # every part a field, as Starlette's parser counts them
                if len(pairs) > MAX_FIELDS:
                    return {}  # Starlette's parser refuses more than max_fields
                # latin-1 then %-decoding as UTF-8 with replacement: Starlette's (python-multipart's).
                return dict(parse_qsl(body.decode("latin-1"), keep_blank_values=True))
    try:
        form = await request.form(max_files=0, max_fields=MAX_FIELDS)
    except Exception:
        return {}
    return {k: v for k, v in form.items() if isinstance(v, str)}


@functools.lru_cache(maxsize=4096)
def _msisdn(phone: str) -> str | None:
    """`normalize_msisdn`, remembered: the gateway sends the same phone on every hop of a session, and
    `phonenumbers` takes ~30 us to say so again."""
    try:
        return normalize_msisdn(phone)
    except InvalidInput:
        return None


def _authorised(secret: str | None) -> bool:
    expected = runtime().settings.AT_CALLBACK_SECRET
    # As bytes: compare_digest refuses (TypeError) a str with anything but ASCII in it.
    return expected is None or (
        secret is not None and hmac.compare_digest(secret.encode(), expected.encode())
    )


def ussd_router(engine: Engine | None = None) -> APIRouter:
    router = APIRouter(tags=["ussd"])
    eng = engine or build_engine(RuntimeStore(), secret=runtime().settings.SECRET_KEY)

    @router.post("/ussd", response_class=PlainTextResponse, summary="Africa's Talking USSD callback")
    async def ussd(request: Request) -> Response:
        """Form fields `sessionId`, `serviceCode`, `phoneNumber`, `networkCode`, `text` (refs §3.1).
        Read by hand rather than declared: a malformed request must get an END line, not a 422."""
        if not _authorised(request.query_params.get("secret")):
            return PlainTextResponse("forbidden", status_code=403)
        form = await _form(request)
        session_id, phone, text = form.get("sessionId", ""), form.get("phoneNumber", ""), form.get("text", "")
        service_code = form.get("serviceCode", "")
        if any(has_unstorable(v) for v in (session_id, phone, text, service_code)):
            # No keypad types a NUL: a forged or broken request. Refused before it reaches a query.
            return PlainTextResponse(UNREADABLE)
        if not session_id or len(session_id) > 128:
            return PlainTextResponse("END This request has no session. Please dial again.")
        msisdn = _msisdn(phone[:32])
        if msisdn is None:
            return PlainTextResponse("END This service is for Kenyan Safaricom and Airtel lines only.")
        if len(text) > MAX_TEXT:
            return PlainTextResponse("END This session has too many steps. Please dial again.")
        try:
            reply = await eng.handle(
                session_id=session_id, msisdn=msisdn, service_code=service_code[:64], text=text
            )
        except Exception:
            log.exception("ussd hop failed (session %s)", session_id)
            reply = "END Sorry, something went wrong on our side. Please dial again in a minute."
        return PlainTextResponse(reply)

    @router.post("/ussd/events", response_class=PlainTextResponse, include_in_schema=False)
    async def session_ended(request: Request) -> Response:
        """AT's end-of-session notification: logged for support (a `Failed` means our reply was bad)."""
        if not _authorised(request.query_params.get("secret")):
            return PlainTextResponse("forbidden", status_code=403)
        form = await _form(request)
        status = form.get("status", "")
        level = logging.WARNING if status == "Failed" else logging.DEBUG
        log.log(
            level,
            "ussd session %s ended: %s %s",
            form.get("sessionId", "")[:128],
            status[:32],
            form.get("errorMessage", "")[:500],
        )
        return PlainTextResponse("ok")

    return router
