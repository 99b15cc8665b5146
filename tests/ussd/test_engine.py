"""The engine on a toy tree, without a database: navigation, replay, repeats, length limits."""

from __future__ import annotations

from ussd.engine import Ctx, Engine, Tree
from ussd.screens import MAX_SCREEN, Action, End, Invalid, Menu, Option, Prompt, fit, plain
from ussd.sessions import MemoryStore

RUNS: list[str] = []


async def parse_qty(ctx: Ctx, value: str) -> None:
    if not value.isdigit() or not 1 <= int(value) <= 9:
        raise Invalid("Enter 1 to 9.")
    ctx.data["qty"] = int(value)


async def order(ctx: Ctx) -> End:
    RUNS.append(f"{ctx.session_id}:{ctx.data['qty']}")
    return End(f"Ordered {ctx.data['qty']}.")


async def root(ctx: Ctx) -> str:
    return "home"


def engine() -> Engine:
    tree = Tree()
    tree.add(
        Menu("home", "Shop", [Option("1", "Order", "qty"), Option("2", "Help", "help")]),
        Menu("help", "Call us."),
        Prompt("qty", "How many?", parse_qty, "confirm"),
        Menu("confirm", "Sure?", [Option("1", "Yes", "order")]),
        Action("order", order),
    )
    return Engine(tree, root, MemoryStore())


async def hop(e: Engine, text: str, session: str = "s1") -> str:
    return await e.handle(session_id=session, msisdn="254712345678", service_code="*1#", text=text)


async def test_walk_back_home_and_reprompt() -> None:
    e = engine()
    assert await hop(e, "") == "CON Shop\n1. Order\n2. Help"
    assert await hop(e, "1") == "CON How many?"
    assert await hop(e, "1*x") == "CON Enter 1 to 9.\nHow many?"
    assert await hop(e, "1*x*0") == "CON Shop\n1. Order\n2. Help"
    assert await hop(e, "1*x*0*2") == "CON Call us.\n0 Back"
    assert await hop(e, "1*x*0*2*00") == "CON Shop\n1. Order\n2. Help"
    assert await hop(e, "1*x*0*2*00*7") == "CON Invalid choice.\nShop\n1. Order\n2. Help"


async def test_action_runs_once_even_when_the_gateway_repeats_the_hop() -> None:
    e = engine()
    RUNS.clear()
    for text in ("", "1", "1*3"):
        await hop(e, text, "rep")
    assert await hop(e, "1*3*1", "rep") == "END Ordered 3."
    assert await hop(e, "1*3*1", "rep") == "END Ordered 3."  # a repeat: the same answer, no re-run
    assert RUNS == ["rep:3"]


async def test_lost_state_replays_to_the_same_screen() -> None:
    a, b = engine(), engine()  # b has an empty store: another process, or Redis restarted
    for text in ("", "1", "1*5"):
        await hop(a, text, "lost")
    assert await hop(b, "1*5") == await hop(a, "1*5*0*0*1*5", "lost") == "CON Sure?\n1. Yes\n0 Back 00 Home"


async def test_an_action_inside_replayed_text_does_not_run() -> None:
    RUNS.clear()
    assert (
        await hop(engine(), "1*3*1*2", "mid") == "END That choice could not be completed. Please dial again."
    )
    assert RUNS == []


async def test_a_session_id_from_another_phone_is_not_trusted() -> None:
    e = engine()
    await hop(e, "", "shared")
    await hop(e, "1", "shared")
    other = await e.handle(session_id="shared", msisdn="254700000001", service_code="*1#", text="1*4")
    assert other == "CON Sure?\n1. Yes\n0 Back 00 Home"  # replayed for that phone, not resumed


async def test_too_many_inputs_end_politely() -> None:
    assert (
        await hop(engine(), "*".join(["2", "0"] * 25))
        == "END This session has too many steps. Please dial again."
    )


def test_fit_keeps_first_and_last_lines_within_the_limit() -> None:
    body = "Title\n" + "\n".join(f"line {i} " + "x" * 30 for i in range(10)) + "\n1. Pick"
    out = fit("CON ", body)
    assert len(out) <= MAX_SCREEN
    assert out.startswith("CON Title\n") and out.endswith("\n1. Pick")
    assert len(fit("END ", "y" * 400)) == MAX_SCREEN


def test_plain_text_only() -> None:
    assert plain("Wanjiku’s Café – “best” 🍲") == 'Wanjiku\'s Cafe - "best" '


async def test_redis_down_falls_back_to_memory() -> None:
    """A Redis that is down (restarting) costs nothing: state goes to memory and the hop is answered."""
    import redis.asyncio as aioredis

    from ussd.sessions import RedisStore

    dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    store = RedisStore(dead, prefix="t:", fallback=MemoryStore())
    tree_engine = engine()
    e = Engine(tree_engine.tree, root, store)
    assert await hop(e, "", "down") == "CON Shop\n1. Order\n2. Help"
    assert await hop(e, "1", "down") == "CON How many?"
    assert await store.load("down") is not None  # kept in memory meanwhile
    assert await store.hit("k", 60) == 1 and await store.hit("k", 60) == 2
    await dead.aclose()
