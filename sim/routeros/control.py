"""HTTP control surface (``/_sim/routers/...``) for simulated routers, for tests in another process.

Every route names a router by its API port. ``POST /_sim/routers`` starts another router in the serving
process (stopped when the app shuts down), so one control port can stand for a whole fleet.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, HTTPException
from pydantic import BaseModel, Field

from sim.routeros.server import QUIT, DownMode, FaultKind, RouterSim
from sim.routeros.state import RosTrap, Row


class RouterIn(BaseModel):
    port: int = Field(0, description="0 picks a free port")
    username: str = "admin"
    password: str = ""
    version: str = "7.18.2"
    identity: str = "MikroTik"
    board_name: str = "hAP ac^2"
    hotspot_servers: list[str] = Field(default_factory=lambda: ["hotspot1"])
    slow: float = 0.0
    down: bool = False
    down_mode: DownMode = "refuse"
    empty_reply: bool | None = None
    bool_style: Literal["true", "yes"] | None = None
    strict: bool = True


class ConfigIn(BaseModel):
    """Only the fields sent are changed; ``empty_reply``/``bool_style`` null goes back to the version's."""

    down: bool | None = None
    down_mode: DownMode | None = None
    slow: float | None = Field(None, ge=0)
    version: str | None = None
    username: str | None = None
    password: str | None = None
    identity: str | None = None
    cpu_load: int | None = Field(None, ge=0, le=100)
    empty_reply: bool | None = None
    bool_style: Literal["true", "yes"] | None = None


class FaultIn(BaseModel):
    kind: FaultKind = "trap"
    message: str = ""
    category: int | None = None
    command: str | None = Field(None, description="e.g. /ip/hotspot/user/add; null: any command but login")
    count: int = Field(1, ge=1)
    after: int = Field(0, ge=0, description="matching commands let through before the fault fires")


class LoginIn(BaseModel):
    user: str
    password: str | None = Field(None, description="checked when given")
    address: str | None = None
    mac_address: str | None = None
    server: str | None = None
    uptime: float = Field(0, ge=0, description="seconds the session has already been up")
    bytes_in: int = Field(0, ge=0)
    bytes_out: int = Field(0, ge=0)


class TrafficIn(BaseModel):
    bytes_in: int = Field(0, ge=0)
    bytes_out: int = Field(0, ge=0)


class AdvanceIn(BaseModel):
    seconds: float = Field(gt=0)


def create_control_app(routers: Iterable[RouterSim] | RouterSim = (), *, host: str = "127.0.0.1") -> FastAPI:
    """Control routes over already-started ``routers``; routers started through the API bind to ``host``."""
    registry: dict[int, RouterSim] = {}
    owned: list[RouterSim] = []
    for sim in [routers] if isinstance(routers, RouterSim) else routers:
        registry[sim.port] = sim

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        for sim in owned:
            await sim.stop()

    app = FastAPI(title="RouterOS API simulator", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.routeros = registry
    app.include_router(control_router(registry, owned, host))
    return app


def control_router(registry: dict[int, RouterSim], owned: list[RouterSim], host: str) -> APIRouter:
    router = APIRouter(prefix="/_sim/routers")

    def lookup(port: int) -> RouterSim:
        sim = registry.get(port)
        if sim is None:
            raise HTTPException(404, f"no router on port {port}")
        return sim

    @router.get("")
    async def list_routers() -> list[dict[str, Any]]:
        return [sim.info() for sim in registry.values()]

    @router.post("", status_code=201)
    async def start_router(body: RouterIn) -> dict[str, Any]:
        if body.port and body.port in registry:
            raise HTTPException(409, f"a router already runs on port {body.port}")
        sim = RouterSim(host=host, **body.model_dump())
        try:
            port = await sim.start()
        except OSError as exc:
            raise HTTPException(409, f"cannot bind port {body.port}: {exc}") from exc
        registry[port] = sim
        owned.append(sim)
        return sim.info()

    @router.get("/{port}")
    async def router_info(port: int) -> dict[str, Any]:
        return lookup(port).info()

    @router.patch("/{port}")
    async def configure(port: int, body: ConfigIn) -> dict[str, Any]:
        sim = lookup(port)
        sent = body.model_fields_set
        if body.slow is not None:
            sim.slow = body.slow
        if body.version is not None:
            sim.version = body.version
        if body.identity is not None:
            sim.state.identity = body.identity
        if body.cpu_load is not None:
            sim.state.cpu_load = body.cpu_load
        if "empty_reply" in sent:
            sim.state.empty_reply_override = body.empty_reply
        if "bool_style" in sent:
            sim.state.bool_style_override = body.bool_style
        if body.username is not None or body.password is not None:
            current = next(iter(sim.logins.items()), ("admin", ""))
            sim.set_credentials(
                body.username if body.username is not None else current[0],
                body.password if body.password is not None else current[1],
            )
        if body.down is not None or body.down_mode is not None:
            await sim.set_down(body.down if body.down is not None else sim.down, body.down_mode)
        return sim.info()

    @router.delete("/{port}")
    async def stop_router(port: int) -> dict[str, bool]:
        sim = lookup(port)
        await sim.stop()
        del registry[port]
        if sim in owned:
            owned.remove(sim)
        return {"stopped": True}

    @router.get("/{port}/state")
    async def state(port: int) -> dict[str, list[Row]]:
        return lookup(port).snapshot()

    @router.get("/{port}/menus/{path:path}")
    async def menu(port: int, path: str) -> list[Row]:
        try:
            return lookup(port).rows(path)
        except KeyError:
            raise HTTPException(404, f"no menu /{path.strip('/')}") from None

    @router.get("/{port}/calls")
    async def calls(port: int, command: str | None = None) -> list[dict[str, Any]]:
        log = lookup(port).calls
        return [c.to_json() for c in log if command is None or c.command == command]

    @router.delete("/{port}/calls")
    async def clear_calls(port: int) -> dict[str, bool]:
        lookup(port).calls.clear()
        return {"cleared": True}

    @router.post("/{port}/faults", status_code=201)
    async def add_fault(port: int, body: FaultIn) -> list[dict[str, Any]]:
        sim = lookup(port)
        if body.kind == "trap":
            if not body.message:
                raise HTTPException(422, "a trap needs a message")
            sim.trap_next(
                body.message, category=body.category, command=body.command, count=body.count, after=body.after
            )
        else:
            for _ in range(body.count):
                if body.kind == "fatal":
                    sim.fatal_next(body.message or QUIT, command=body.command, after=body.after)
                elif body.kind == "drop":
                    sim.drop_next(command=body.command, after=body.after)
                else:
                    sim.hang_next(command=body.command, after=body.after)
        return [f.to_json() for f in sim.faults]

    @router.delete("/{port}/faults")
    async def clear_faults(port: int) -> dict[str, bool]:
        lookup(port).clear_faults()
        return {"cleared": True}

    @router.post("/{port}/active", status_code=201)
    async def hotspot_login(port: int, body: LoginIn) -> Row:
        try:
            return lookup(port).simulate_login(
                body.user,
                password=body.password,
                address=body.address,
                mac_address=body.mac_address,
                server=body.server,
                uptime=body.uptime,
                bytes_in=body.bytes_in,
                bytes_out=body.bytes_out,
            )
        except RosTrap as trap:
            raise HTTPException(409, trap.message) from None

    @router.delete("/{port}/active")
    async def hotspot_logout(port: int, user: str | None = None, id: str | None = None) -> dict[str, int]:
        if user is None and id is None:
            raise HTTPException(422, "give user= or id=")
        return {"ended": lookup(port).simulate_logout(user=user, session_id=id)}

    @router.post("/{port}/active/{session_id}/traffic")
    async def traffic(port: int, session_id: str, body: TrafficIn) -> dict[str, bool]:
        try:
            lookup(port).add_traffic(session_id, bytes_in=body.bytes_in, bytes_out=body.bytes_out)
        except RosTrap as trap:
            raise HTTPException(404, trap.message) from None
        return {"ok": True}

    @router.post("/{port}/advance")
    async def advance(port: int, body: AdvanceIn) -> dict[str, bool]:
        lookup(port).advance(body.seconds)
        return {"ok": True}

    @router.post("/{port}/reboot")
    async def reboot(port: int) -> dict[str, bool]:
        await lookup(port).reboot()
        return {"rebooted": True}

    @router.post("/{port}/reset")
    async def reset(port: int) -> dict[str, bool]:
        lookup(port).reset()
        return {"reset": True}

    return router
