"""`lipapush mcp`: the MCP server over stdio, for desktop agents (Claude Desktop, Cursor, VS Code …)
that start a local command and speak MCP on its stdin and stdout.

It acts as one API key for its whole life (LIPAPUSH_API_KEY, or --key), checked again on every
message, so a key revoked meanwhile is refused on the next call. It needs the same database settings
as the web process (DATABASE_URL, SECRET_KEY, …); payment callbacks go to the web process as usual.
stdout carries the protocol only: every log line goes to stderr."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from core.auth.tokens import looks_like_api_key
from core.errors import LipapushError
from web.cli import UrlOption, _fail, app, bootstrap_client


@app.command("mcp")
def mcp_stdio(
    key: Annotated[
        str | None,
        typer.Option(
            envvar="LIPAPUSH_API_KEY",
            help="The API key the agent acts as (lp_test_… or lp_live_…). Prefer the environment "
            "variable LIPAPUSH_API_KEY: a command-line argument is visible to other users of the machine.",
            show_default=False,
        ),
    ] = None,
    url: UrlOption = None,
) -> None:
    """Serve lipapush's MCP tools on stdin/stdout as one API key (for agents that start a command)."""
    if not key or not looks_like_api_key(key.strip()):
        raise _fail(
            "Give the API key to act as: set LIPAPUSH_API_KEY (lp_test_… or lp_live_…), or --key. Create one "
            "in the panel (Settings → API keys) or with `lipapush apikey create`.",
            2,
        )
    key = key.strip()
    rt = bootstrap_client(url)  # links and the simulator: the running server's address

    from core.usage.recorder import UsageRecorder
    from web.mcp.calls import identify
    from web.mcp.context import Caller
    from web.mcp.server import build_server

    caller = Caller(key=key, transport="stdio")

    async def main() -> None:
        recorder = UsageRecorder(flush_every=rt.settings.USAGE_FLUSH_SECONDS)
        try:
            try:
                await identify(caller)  # a bad key stops here, with its reason, before any client waits
            except LipapushError as exc:
                raise _fail(exc.message, 2) from None
            await build_server(recorder=recorder, stdio=caller).run_stdio_async()
        finally:
            await recorder.close()
            await rt.aclose()

    asyncio.run(main())
