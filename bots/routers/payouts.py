"""💸 /payout (the owner, and staff the owner allowed to pay out): the recipient's number → the amount →
who it is for (optional) → a confirmation screen → sent to M-Pesa. The message then shows where the
payout is (🔄 Check), and the owner is told here when M-Pesa does not pay it (core.payouts tells
them). /payouts lists the latest payouts and bulk payouts. The same use cases as /api/payouts, the
panel and USSD (core.payouts.use_cases)."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from html import escape

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bots import texts
from bots.filters import HasText
from bots.keyboards import BatchCb, PayoutCb, cancel_row, with_cancel
from bots.middlewares import Actor
from bots.tabs import back_row, need, target
from core.access.permissions import Permission
from core.auth.models import Role
from core.db import Scope
from core.errors import InvalidInput, LipapushError
from core.money import format_kes
from core.notify.texts import local_phone
from core.payments.schemas import clean_name
from core.payout_batches.texts import HEADS
from core.payout_batches.use_cases import list_batches
from core.payouts.channels import choose, ensure_can_pay_out, payout_channels
from core.payouts.errors import PayoutOverLimit
from core.payouts.models import PayoutStatus
from core.payouts.schemas import PayoutFilter, PayoutOut, parse_payout_amount
from core.payouts.texts import payout_line
from core.payouts.use_cases import get_payout, list_payouts, request_payout, with_payout_grant
from core.phones import normalize_msisdn
from core.runtime import unit_of_work
from core.tenants.models import ChannelKind, Mode

router = Router(name="payouts")

ICONS = {
    PayoutStatus.queued: "⏳",
    PayoutStatus.pending: "⏳",
    PayoutStatus.success: "✅",
    PayoutStatus.failed: "❌",
    PayoutStatus.timeout: "⚠️",
}
LISTED_PAYOUTS = 10
LISTED_BATCHES = 5


class PayOut(StatesGroup):
    channel = State()
    phone = State()
    amount = State()
    name = State()
    confirm = State()


@dataclass(frozen=True)
class PayoutChannel:
    id: uuid.UUID
    name: str
    test: bool  # a simulator or sandbox channel: no real money moves

    @property
    def label(self) -> str:
        return f"“{escape(self.name)}”" + (" (test money)" if self.test else "")


async def payout_channels_for(actor: Actor) -> list[PayoutChannel]:
    """Where this person may pay out from, asked before the first question so nobody types a list or an
    amount only to be refused: in core's words when they may not pay out (staff the owner did not
    allow) or no channel can. One channel: the one core picks by itself, checked ready; several: the
    ones to choose from (B2C short codes, else those with an initiator, as core would offer them)."""
    (await with_payout_grant(actor.core)).require(Permission.payouts_request)
    async with unit_of_work(readonly=True, scope=Scope.tenant(actor.tenant_id)) as session:
        try:
            pool = [await choose(session, tenant_id=actor.tenant_id, channel_id=None, mode=None)]
        except InvalidInput:  # several: the person picks one
            rows = await payout_channels(session, tenant_id=actor.tenant_id)
            pool = [c for c in rows if c.kind is ChannelKind.b2c] or [c for c in rows if c.initiator_name]
        if len(pool) == 1:
            ensure_can_pay_out(pool[0])
        return [PayoutChannel(c.id, c.name, c.mode is Mode.test) for c in pool]


def channel_rows(
    choices: list[PayoutChannel], button: type[PayoutCb] | type[BatchCb]
) -> list[list[InlineKeyboardButton]]:
    return [
        [
            InlineKeyboardButton(
                text=c.name + (" (test money)" if c.test else ""),
                callback_data=button(action="ch", id=str(c.id)).pack(),
            )
        ]
        for c in choices
    ]


def _chosen(data: dict[str, object]) -> PayoutChannel:
    return PayoutChannel(uuid.UUID(str(data["cid"])), str(data["cname"]), bool(data["ctest"]))


async def _remember(state: FSMContext, channel: PayoutChannel) -> None:
    await state.update_data(cid=str(channel.id), cname=channel.name, ctest=channel.test)


# --- the flow --------------------------------------------------------------------------------------


@router.message(Command("payout"))
@router.callback_query(PayoutCb.filter(F.action == "start"))
async def start(event: Message | CallbackQuery, state: FSMContext, actor: Actor | None) -> None:
    actor = need(actor)
    if isinstance(event, CallbackQuery):
        await event.answer()
    choices = await payout_channels_for(actor)
    await state.clear()
    if (where := target(event)) is None:
        return
    if len(choices) > 1:
        await state.set_state(PayOut.channel)
        await where.answer(texts.PAYOUT_CHANNEL, reply_markup=with_cancel(channel_rows(choices, PayoutCb)))
        return
    await _remember(state, choices[0])
    await state.set_state(PayOut.phone)
    await where.answer(texts.PAYOUT_PHONE, reply_markup=with_cancel())


@router.callback_query(StateFilter(PayOut.channel), PayoutCb.filter(F.action == "ch"))
async def picked_channel(
    query: CallbackQuery, callback_data: PayoutCb, state: FSMContext, actor: Actor | None
) -> None:
    actor = need(actor)
    await query.answer()
    picked = next((c for c in await payout_channels_for(actor) if str(c.id) == callback_data.id), None)
    if picked is None or (where := target(query)) is None:
        return
    await _remember(state, picked)
    await state.set_state(PayOut.phone)
    await where.answer(f"Through {picked.label}.\n" + texts.PAYOUT_PHONE, reply_markup=with_cancel())


@router.message(StateFilter(PayOut.phone), HasText())
async def got_phone(message: Message, state: FSMContext) -> None:
    try:
        phone = normalize_msisdn(message.text or "")
    except InvalidInput as exc:
        await message.answer(texts.invalid(exc.message), reply_markup=with_cancel())
        return
    await state.update_data(phone=phone)
    await state.set_state(PayOut.amount)
    await message.answer(texts.PAYOUT_AMOUNT, reply_markup=with_cancel())


@router.message(StateFilter(PayOut.amount), HasText())
async def got_amount(message: Message, state: FSMContext) -> None:
    try:
        amount = parse_payout_amount((message.text or "").replace(",", "").strip())
    except ValueError as exc:  # InvalidInput is one too
        await message.answer(texts.invalid(str(exc)), reply_markup=with_cancel())
        return
    await state.update_data(amount=amount)
    data = await state.get_data()
    if "name" in data:  # the amount again, after the limit refused the first: the name stands
        await _confirm(message, state)
        return
    await state.set_state(PayOut.name)
    skip = InlineKeyboardButton(text="Skip ⏭", callback_data=PayoutCb(action="skip").pack())
    await message.answer(texts.PAYOUT_NAME, reply_markup=with_cancel([[skip]]))


@router.message(StateFilter(PayOut.name), HasText())
async def got_name(message: Message, state: FSMContext) -> None:
    try:
        name = clean_name(message.text)
    except ValueError as exc:
        await message.answer(texts.invalid(str(exc)), reply_markup=with_cancel())
        return
    await state.update_data(name=name)
    await _confirm(message, state)


@router.callback_query(StateFilter(PayOut.name), PayoutCb.filter(F.action == "skip"))
async def skipped_name(query: CallbackQuery, state: FSMContext) -> None:
    await query.answer()
    await state.update_data(name=None)
    if (where := target(query)) is not None:
        await _confirm(where, state)


def confirm_text(*, phone: str, amount: int, name: str | None, channel: PayoutChannel) -> str:
    who = f"{local_phone(phone)} ({escape(name)})" if name else local_phone(phone)
    return f"💸 Send <b>{format_kes(amount)}</b> to {who} through {channel.label}? It cannot be undone."


async def _confirm(where: Message, state: FSMContext) -> None:
    data = await state.get_data()
    await state.set_state(PayOut.confirm)
    send = InlineKeyboardButton(text="✅ Send", callback_data=PayoutCb(action="send").pack())
    await where.answer(
        confirm_text(
            phone=str(data["phone"]),
            amount=int(str(data["amount"])),
            name=str(data["name"]) if data.get("name") else None,
            channel=_chosen(data),
        ),
        reply_markup=InlineKeyboardMarkup(inline_keyboard=[[send, *cancel_row()]]),
    )


@router.callback_query(StateFilter(PayOut.confirm), PayoutCb.filter(F.action == "send"))
async def send(query: CallbackQuery, state: FSMContext, actor: Actor | None) -> None:
    actor = need(actor)
    data = await state.get_data()
    await state.clear()  # a second press finds nothing to send (and the key below repeats the first)
    await query.answer()
    if (where := target(query)) is None:
        return
    channel = _chosen(data)
    try:
        payout = await request_payout(
            actor.core,
            phone=str(data["phone"]),
            amount=int(str(data["amount"])),
            name=str(data["name"]) if data.get("name") else None,
            channel_id=channel.id,
            # this confirmation screen, once: a repeated press answers with the same payout
            idempotency_key=f"telegram:{where.chat.id}:{where.message_id}",
        )
    except PayoutOverLimit as exc:  # a smaller amount may go: ask it again, the rest stands
        await state.set_data(data)
        await state.set_state(PayOut.amount)
        await where.edit_text(f"⚠️ {escape(exc.message)}\nType another amount, or /cancel.")
        return
    except LipapushError as exc:
        await where.edit_text(f"⚠️ Not sent: {escape(exc.message)}")
        return
    await where.edit_text(
        sent_text(payout, channel=channel, owner=actor.role is Role.owner),
        reply_markup=check_keyboard(payout, actor),
    )


def status_line(p: PayoutOut) -> str:
    return f"{ICONS[p.status]} {escape(payout_line(p))}"


def sent_text(p: PayoutOut, *, channel: PayoutChannel, owner: bool) -> str:
    told = "I tell you here" if owner else "The owner is told"
    return f"{status_line(p)}\nSent to M-Pesa through {channel.label}. {told} if M-Pesa does not pay it."


def check_keyboard(p: PayoutOut, actor: Actor) -> InlineKeyboardMarkup | None:
    if p.status.is_final or not actor.core.can(Permission.payouts_read):
        return None
    check = InlineKeyboardButton(text="🔄 Check", callback_data=PayoutCb(action="check", id=str(p.id)).pack())
    return InlineKeyboardMarkup(inline_keyboard=[[check]])


@router.callback_query(PayoutCb.filter(F.action == "check"))
async def check(query: CallbackQuery, callback_data: PayoutCb, actor: Actor | None) -> None:
    actor = need(actor, Permission.payouts_read)
    payout = await get_payout(actor.core, uuid.UUID(callback_data.id))
    if not payout.status.is_final:
        await query.answer("Still on its way: M-Pesa has not answered yet.")
        return
    await query.answer()
    if (where := target(query)) is not None:
        with contextlib.suppress(TelegramBadRequest):  # pressed twice: already up to date
            await where.edit_text(status_line(payout))


# --- /payouts --------------------------------------------------------------------------------------


@router.message(Command("payouts"))
@router.callback_query(PayoutCb.filter(F.action == "list"))
async def list_all(event: Message | CallbackQuery, actor: Actor | None) -> None:
    actor = need(actor, Permission.payouts_read)
    if isinstance(event, CallbackQuery):
        await event.answer()
    page = await list_payouts(actor.core, filters=PayoutFilter(), limit=LISTED_PAYOUTS)
    batches = await list_batches(actor.core, limit=LISTED_BATCHES)
    lines = [f"💸 <b>Payouts of {escape(actor.business)}</b> (newest first)"]
    lines += [f"• {status_line(p)}" for p in page.items] or ["No payouts yet."]
    rows: list[list[InlineKeyboardButton]] = []
    if batches:
        lines.append("\n📦 <b>Bulk payouts</b> (tap one to follow it)")
        for b in batches:
            p = b.progress
            rows_sent = p.queued + p.pending + p.paid + p.failed + p.timeout if p is not None else 0
            done = f", {p.paid} of {rows_sent} paid" if p is not None else ""
            lines.append(f"• {escape(b.filename)}: {HEADS[b.status]}{done}")
            rows.append(
                [
                    InlineKeyboardButton(
                        text=f"📦 {b.filename}", callback_data=BatchCb(action="open", id=str(b.id)).pack()
                    )
                ]
            )
    if actor.core.can(Permission.payouts_request):
        rows.append(
            [
                InlineKeyboardButton(text="💸 Pay out", callback_data=PayoutCb(action="start").pack()),
                InlineKeyboardButton(text="📦 Bulk payout", callback_data=BatchCb(action="start").pack()),
            ]
        )
    rows.append(back_row())
    if (where := target(event)) is not None:
        await where.answer("\n".join(lines), reply_markup=InlineKeyboardMarkup(inline_keyboard=rows))
