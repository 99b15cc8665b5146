"""The whole USSD menu: one tree, and where a dialler starts in it."""

from __future__ import annotations

import hashlib
import hmac

from core.auth.pins import user_by_ussd_phone
from core.db import Scope
from core.runtime import unit_of_work
from ussd import merchant, payer, payouts, wifi
from ussd.engine import Ctx, Engine, Tree
from ussd.screens import End, Menu, Prompt
from ussd.sessions import SessionStore


def build_tree() -> Tree:
    tree = Tree()
    merchant.build(tree)
    payouts.build(tree)
    payer.build(tree)
    wifi.build(tree)
    for node in tree.nodes.values():  # every target must exist: a typo would only show at run time
        targets: list[str] = []
        if isinstance(node, Menu) and isinstance(node.options, list):
            targets = [o.to for o in node.options]
        if isinstance(node, Prompt) and isinstance(node.next, str):
            targets.append(node.next)
        missing = [t for t in targets if t not in tree.nodes]
        if missing:
            raise ValueError(f"USSD node {node.id!r} points at unknown {missing}")
    return tree


# A dial names no business: whose menu the phone opens is asked of all of them.
WHOSE_PHONE = Scope.platform("USSD dial: the account of the phone")


async def root(ctx: Ctx) -> str | End:
    # The dial reads only whose phone it is (one statement); the business is read with the PIN.
    async with unit_of_work(readonly=True, scope=WHOSE_PHONE) as session:
        user = await user_by_ussd_phone(session, ctx.msisdn)
    if user is None or user.disabled_at is not None:
        return "p.home"
    return merchant.signed_in_root(ctx, user)


def build_engine(store: SessionStore, *, secret: str) -> Engine:
    """`secret` (SECRET_KEY) keys the session digests, so every web process can resume every session."""
    key = hmac.new(secret.encode(), b"lipapush-ussd-session", hashlib.sha256).digest()
    return Engine(build_tree(), root, store, key=key)
