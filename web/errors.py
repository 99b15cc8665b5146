"""The error table rendered as HTTP: `{"error": code, "detail": message, ...}`."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from core.context import current_request
from core.errors import LipapushError
from web.panel.errors import is_panel, panel_error, panel_validation_error

log = logging.getLogger("lipapush.web")


def _field_name(loc: tuple[object, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LipapushError)
    async def _domain(request: Request, exc: LipapushError) -> Response:
        if is_panel(request):
            return panel_error(request, exc)
        body: dict[str, object] = {"error": exc.code, "detail": exc.message}
        body.update({k: v for k, v in exc.fields.items() if k != "field"})
        if "field" in exc.fields:
            body["errors"] = {str(exc.fields["field"]): exc.message}
        return JSONResponse(body, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors: dict[str, str] = {}
        for err in exc.errors():
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
