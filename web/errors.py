"""The error table rendered as HTTP: `{"error": code, "detail": message, ...}`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.context import current_request
from core.errors import LipapushError
from web.limits import BodyTooLarge
from web.panel.errors import is_panel, panel_error, panel_validation_error

log = logging.getLogger("lipapush.web")


def _field_name(loc: tuple[object, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or ("query" if loc[:1] == ("query",) else "body")


SEND_JSON = "Send a JSON object with Content-Type: application/json."
HTTP_ERRORS = {
    404: ("not_found", "No such API endpoint: check the method and URL against /docs."),
    405: ("method_not_allowed", "This URL does not take this method: see /docs for the ones it takes."),
}


def _json_position(doc: object, pos: int) -> str:
    if not isinstance(doc, str):
        return f"at character {pos + 1}"
    line = doc.count("\n", 0, pos) + 1
    column = pos - doc.rfind("\n", 0, pos)
    return f"at line {line} column {column}"


def _body_problem(request: Request, err: dict[str, Any], body: object) -> tuple[str, str] | None:
    """(short reason, full sentence) when the body as a whole is unusable, else None.

    FastAPI reports these with locations that read as nonsense to a client (`0: JSON decode error` is
    the character offset; a form-encoded body becomes "Input should be a valid dictionary"), so the
    reason is rewritten to name the mistake and its fix."""
    loc = tuple(err.get("loc", ()))
    kind = err.get("type")
    if kind == "json_invalid" and loc[:1] == ("body",):
        pos = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else 0
        ctx = err.get("ctx") or {}
        why = f"{ctx.get('error', 'JSON decode error')} {_json_position(body, pos)}"
        return f"Not valid JSON ({why}).", f"The request body is not valid JSON ({why}). {SEND_JSON}"
    if loc != ("body",):
        return None
    if kind == "missing":
        return "The request body is empty.", f"The request body is empty. {SEND_JSON}"
    if kind in ("model_attributes_type", "dict_type", "model_type"):
        value = err.get("input")
        if isinstance(value, bytes | bytearray):
            # FastAPI parses JSON only under a JSON content type; anything else arrives as raw bytes.
            ctype = request.headers.get("content-type", "")[:100] or "none"
            reason = f"Not JSON (Content-Type: {ctype})."
            return reason, f"The request body was not sent as JSON (Content-Type: {ctype}). {SEND_JSON}"
        got = {list: "an array", str: "a string", bool: "true/false", type(None): "null"}.get(
            type(value), "a number"
        )
        return (
            f"Must be a JSON object, not {got}.",
            f"The request body must be a JSON object ({{...}}), not {got}. {SEND_JSON}",
        )
    return None


def retry_after_header(exc: LipapushError) -> dict[str, str] | None:
    """Retry-After for an error that knows when to try again (a sign-in limit). A header, never a body
    field: the seconds left differ from one answer to the next, and the body must compare equal."""
    seconds = getattr(exc, "retry_after", None)
    if seconds is None:  # a push limit also says it in the body (core.payments.use_cases)
        seconds = exc.fields.get("retry_after")
    if not isinstance(seconds, int):
        return None
    headers = {"Retry-After": str(seconds)}
    name, allowed, window = (exc.fields.get(k) for k in ("limit", "allowed", "window_seconds"))
    if isinstance(name, str) and isinstance(allowed, int) and isinstance(window, int):
        # The IETF RateLimit fields (draft-ietf-httpapi-ratelimit-headers-11) of the limit that refused.
        headers["RateLimit-Policy"] = f'"{name}";q={allowed};w={max(1, window)}'
        headers["RateLimit"] = f'"{name}";r=0;t={seconds}'
    return headers


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LipapushError)
    async def _domain(request: Request, exc: LipapushError) -> Response:
        if is_panel(request):
            return panel_error(request, exc)
        body: dict[str, object] = {"error": exc.code, "detail": exc.message}
        body.update({k: v for k, v in exc.fields.items() if k != "field"})
        if "field" in exc.fields:
            body["errors"] = {str(exc.fields["field"]): exc.message}
        return JSONResponse(body, status_code=exc.status, headers=retry_after_header(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        # FastAPI's own refusals (a body it cannot decode, an unknown URL or method) answer
        # `{"detail": ...}`; under /api they get the envelope every other error has.
        if not request.url.path.startswith("/api/") or isinstance(exc, BodyTooLarge):
            return await http_exception_handler(request, exc)
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            return JSONResponse(
                {
                    "error": "invalid_input",
                    "detail": f"The request body is not valid JSON: it is not UTF-8 text. {SEND_JSON}",
                    "errors": {"body": "Not valid JSON (not UTF-8 text)."},
                },
                status_code=422,
            )
        code, detail = HTTP_ERRORS.get(exc.status_code, ("http_error", str(exc.detail)))
        body = {"error": code, "detail": detail}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors: dict[str, str] = {}
        for err in exc.errors():
            if problem := _body_problem(request, err, exc.body):
                reason, sentence = problem
                if is_panel(request):
                    return panel_validation_error(request, sentence)
                return JSONResponse(
                    {"error": "invalid_input", "detail": sentence, "errors": {"body": reason}},
                    status_code=422,
                )
            name = _field_name(tuple(err.get("loc", ())))
            msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
            if err.get("type") == "missing":
                msg = "This field is required."
            elif err.get("type") == "extra_forbidden":
                msg = "Unknown field: remove it."
            errors.setdefault(name, msg)
        detail = "; ".join(f"{k}: {v}" for k, v in errors.items())
        if is_panel(request):
            where = {str(e.get("loc", ("",))[0]) for e in exc.errors()}
            return panel_validation_error(request, detail if "path" not in where else "path: no such page.")
        return JSONResponse({"error": "invalid_input", "detail": detail, "errors": errors}, status_code=422)

    @app.exception_handler(Exception)
    async def _unknown(_: Request, exc: Exception) -> JSONResponse:
        req = current_request()
        rid = req.request_id if req else None
        log.exception("unhandled error (request %s)", rid)
        return JSONResponse(
            {"error": "internal_error", "detail": "Something went wrong, try again.", "request_id": rid},
            status_code=500,
        )
