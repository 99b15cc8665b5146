"""The baseline server of ``bench/ussd_latency.py``: a bare FastAPI app answering ``POST /ussd``.

It reads the same form fields (and the optional ``?secret=``) as ``ussd.router`` and answers
``PlainTextResponse("CON hello")``; no middleware, no database, no session state. It is served by
``uvicorn.run`` with the same arguments and the same logging set-up as ``lipapush web`` / ``serve``
(``web.cli._serve``: one process, uvicorn's default loop and HTTP parser, ``proxy_headers=True``,
``log_config=None`` with ``web.logs.setup_logging(LOG_LEVEL)``), so at ``LOG_LEVEL=INFO`` both write
one access-log line per request. Run by the bench:

    python bench/_ussd_baseline.py --host 127.0.0.1 --port 8123 --log-level INFO
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Annotated

# Runnable as a plain script from anywhere in the checkout, installed package or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uvicorn
from fastapi import FastAPI, Form, Query
from fastapi.responses import PlainTextResponse, Response


def create_app() -> FastAPI:
    app = FastAPI(title="ussd baseline")

    @app.post("/ussd", response_class=PlainTextResponse)
    async def ussd(
        sessionId: Annotated[str, Form()] = "",
        serviceCode: Annotated[str, Form()] = "",
        phoneNumber: Annotated[str, Form()] = "",
        text: Annotated[str, Form()] = "",
        networkCode: Annotated[str, Form()] = "",
        secret: Annotated[str | None, Query(max_length=128)] = None,
    ) -> Response:
        return PlainTextResponse("CON hello")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()

    from web.logs import setup_logging

    setup_logging(args.log_level)
    uvicorn.run(
        create_app(),
        host=args.host,
        port=args.port,
        log_level=args.log_level.lower(),
        proxy_headers=True,
        log_config=None,
    )


if __name__ == "__main__":
    main()
