"""Walking a USSD session through a tree of screens.

Africa's Talking sends the whole input so far (`text`, joined by `*`) on every hop. The engine keeps
the walked state per session (ussd.sessions) and only applies the tokens that are new; without a
stored state it replays `text` from the start, which gives the same screen. `0` goes back and `00`
home, except at prompts where those are values. Actions (a push, a PIN change) only ever run for the
last token of a hop: a replayed or forged `text` that walks through an action stops there instead.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from core.errors import LipapushError
from ussd.screens import (
    MAX_SCREEN,
    Action,
    End,
    EndSession,
    Invalid,
    Menu,
    Node,
    Option,
    Prompt,
    fit,
    plain,
)
from ussd.sessions import SessionStore

log = logging.getLogger(__name__)

BACK, HOME = "0", "00"
# Past this many inputs in one session something is feeding us garbage: end it politely.
MAX_TOKENS = 40


@dataclass
class Ctx:
    session_id: str
    msisdn: str  # 2547…/2541…
    service_code: str
    data: dict[str, Any]
    store: SessionStore
    last: bool = True  # the token being applied is the last of this hop


Root = Callable[[Ctx], Awaitable["str | End"]]


@dataclass
class Tree:
    nodes: dict[str, Node] = field(default_factory=dict)

    def add(self, *nodes: Node) -> None:
        for node in nodes:
            if node.id in self.nodes:
                raise ValueError(f"USSD node {node.id!r} declared twice")
            self.nodes[node.id] = node

    def __getitem__(self, node_id: str) -> Node:
        return self.nodes[node_id]


@dataclass
class _Walk:
    stack: list[str]
    data: dict[str, Any]
    error: str = ""
    reply: str | None = None  # set once the session ended


async def _text(ctx: Ctx, text: Any) -> str:
    return text if isinstance(text, str) else str(await text(ctx))


async def _options(ctx: Ctx, menu: Menu) -> list[Option]:
    opts = menu.options if isinstance(menu.options, list) else await menu.options(ctx)
    return [o for o in opts if o.allow is None or o.allow(ctx)]


class Engine:
    def __init__(self, tree: Tree, root: Root, store: SessionStore, *, key: bytes | None = None) -> None:
        self.tree = tree
        self.root = root
        self.store = store
        self._key = key or secrets.token_bytes(32)

    def _digest(self, session_id: str, msisdn: str, tokens: list[str]) -> str:
        """The stored state holds this instead of `text`: `text` carries the PIN on every hop, and a
        keyed digest still tells whether a new hop extends the one we saw."""
        raw = "\x00".join([session_id, msisdn, *tokens]).encode()
        return hmac.new(self._key, raw, hashlib.sha256).hexdigest()

    async def handle(self, *, session_id: str, msisdn: str, service_code: str, text: str) -> str:
        """One hop: the reply body, starting with `CON ` or `END `."""
        tokens = text.split("*") if text else []
        stored = await self.store.load(session_id)
        # A session id is the gateway's; never trust one across phones (the digest covers the phone).
        seen = int(stored["n"]) if stored is not None else -1
        if (
            stored is not None
            and seen == len(tokens)
            and stored.get("last")
            and hmac.compare_digest(stored["text"], self._digest(session_id, msisdn, tokens))
        ):
            return str(stored["last"])  # the gateway repeated a hop: same answer, nothing re-run
        done: list[str] = []
        ctx = Ctx(session_id=session_id, msisdn=msisdn, service_code=service_code, data={}, store=self.store)
        walk: _Walk | None = None
        if (
            stored is not None
            and not stored.get("ended")
            and 0 <= seen < len(tokens)
            and hmac.compare_digest(stored["text"], self._digest(session_id, msisdn, tokens[:seen]))
        ):
            walk = _Walk(stack=list(stored["stack"]), data=dict(stored["data"]))
            done, tokens = tokens[:seen], tokens[seen:]
        if walk is None:
            ctx.data = {}
            start = await self.root(ctx)
            if isinstance(start, End):
                return await self._finish(session_id, msisdn, text, fit("END ", start.text), ctx)
            walk = _Walk(stack=[start], data=ctx.data)
        ctx.data = walk.data
        if len(done) + len(tokens) > MAX_TOKENS:
            return await self._finish(
                session_id, msisdn, text, "END This session has too many steps. Please dial again.", ctx
            )
        for i, token in enumerate(tokens):
            ctx.last = i == len(tokens) - 1
            walk.error = ""
            outcome = await self._apply(ctx, walk, token.strip())
            if outcome is not None:
                if not ctx.last:
                    outcome = "END That choice could not be completed. Please dial again."
                return await self._finish(session_id, msisdn, text, outcome, ctx)
        try:
            reply = await self._render(ctx, walk)
        except EndSession as exc:
            return await self._finish(session_id, msisdn, text, fit("END ", str(exc)), ctx)
        all_tokens = done + tokens
        await self.store.save(
            session_id,
            {
                "n": len(all_tokens),
                "text": self._digest(session_id, msisdn, all_tokens),
                "stack": walk.stack,
                "data": walk.data,
                "last": reply,
            },
        )
        return reply

    async def _finish(self, session_id: str, msisdn: str, text: str, reply: str, ctx: Ctx) -> str:
        """The session ended: keep only the answer, for a repeated last hop."""
        tokens = text.split("*") if text else []
        state = {
            "n": len(tokens),
            "text": self._digest(session_id, msisdn, tokens),
            "stack": [],
            "data": {},
            "last": reply,
            "ended": True,
        }
        await self.store.save(session_id, state)
        return reply

    async def _apply(self, ctx: Ctx, walk: _Walk, token: str) -> str | None:
        """Apply one input at the current node. Returns a final reply when the session ends or an
        action answered; None to go on."""
        node = self.tree[walk.stack[-1]]
        navigates = not isinstance(node, Prompt) or node.navigates
        if navigates and token == HOME:
            del walk.stack[1:]
            return None
        if navigates and token == BACK:
            if len(walk.stack) > 1:
                walk.stack.pop()
            return None
        try:
            if isinstance(node, Menu):
                choice = next((o for o in await _options(ctx, node) if o.key == token), None)
                if choice is None:
                    raise Invalid("Invalid choice.")
                if node.keep is not None:
                    ctx.data[node.keep] = choice.value
                return await self._enter(ctx, walk, choice.to)
            if isinstance(node, Prompt):
                await node.parse(ctx, token)
                target = node.next if isinstance(node.next, str) else node.next(ctx)
                if node.gate:
                    walk.stack = []
                return await self._enter(ctx, walk, target)
        except Invalid as exc:
            walk.error = str(exc)
            return None
        except EndSession as exc:
            return fit("END ", str(exc))
        except LipapushError as exc:
            walk.error = exc.message
            return None
        raise AssertionError(f"an action cannot be current: {node}")

    async def _enter(self, ctx: Ctx, walk: _Walk, node_id: str) -> str | None:
        node = self.tree[node_id]
        if not isinstance(node, Action):
            walk.stack.append(node_id)
            return None
        if not ctx.last:
            return "END That choice could not be completed. Please dial again."
        try:
            result = await node.run(ctx)
        except EndSession as exc:
            return fit("END ", str(exc))
        except LipapushError as exc:
            return fit("END ", exc.message)
        if isinstance(result, End):
            return fit("END ", result.text)
        walk.stack.append(result.node)
        walk.error = result.note
        return None

    async def _render(self, ctx: Ctx, walk: _Walk) -> str:
        """The screen at the top of the path. What the user must act on (a prompt's question, a menu's
        options) always shows; the error and the title give way when the screen is too long."""
        node = self.tree[walk.stack[-1]]
        error = plain(walk.error)
        if isinstance(node, Prompt):
            *intro, question = plain(await _text(ctx, node.text)).split("\n")
            return compose([error, *intro], [question])
        assert isinstance(node, Menu)
        title = plain(await _text(ctx, node.title))
        lines = [f"{o.key}. {plain(o.label)}" for o in await _options(ctx, node)]
        if node.footer and len(walk.stack) > 1:
            nav = "0 Back 00 Home" if len(walk.stack) > 2 else "0 Back"
            # The footer is the first thing to go: 0 and 00 work without it.
            if len("\n".join(x for x in ("CON " + error, title, *lines, nav) if x)) <= MAX_SCREEN:
                lines.append(nav)
        return compose([error, title], lines)


def compose(head: list[str], tail: list[str]) -> str:
    """`CON ` + head lines + tail lines within MAX_SCREEN. The tail (the question, the options) is
    kept whole; the longest head line (a long name, an error) is cut first, then dropped."""
    lines = [h for h in head if h]
    tail = [t for t in tail if t]
    room = MAX_SCREEN - len("CON ")

    def size() -> int:
        return len("\n".join([*lines, *tail]))

    while size() > room and lines:
        over = size() - room
        i = max(range(len(lines)), key=lambda k: len(lines[k]))
        if len(lines[i]) - over - 2 >= 12:
            lines[i] = lines[i][: len(lines[i]) - over - 2].rstrip() + ".."
        else:
            del lines[i]
    return fit("CON ", "\n".join([*lines, *tail]))
