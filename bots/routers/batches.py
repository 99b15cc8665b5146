"""📦 Bulk payouts in the chat (the owner, and staff the owner allowed to pay out): an .xlsx or .csv file
sent to the chat (after /payouts_bulk, or just dropped in) → the preview: the rows to pay and their
total, refused rows with their reasons, duplicates flagged → ✅ Pay, the confirmation → a progress
message that edits itself as rows finish (core.payout_batches.jobs), with ⏸ Pause, ▶️ Resume and
📥 Result as the batch's state allows. The same use cases as /api/payout-batches and the panel
(core.payout_batches.use_cases)."""

from __future__ import annotations

import contextlib
import uuid
from html import escape
from typing import Any

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.filters import BaseFilter, Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bots import texts
from bots.filters import HasText
from bots.keyboards import BatchCb, with_cancel
from bots.middlewares import Actor
from bots.routers.payouts import PayoutChannel, channel_rows, payout_channels_for
from bots.tabs import need, send_export, target
from core.access.permissions import Permission
from core.errors import InvalidInput
from core.money import format_kes
from core.payout_batches.schemas import BatchOut
from core.payout_batches.texts import progress_text
from core.payout_batches.use_cases import (
    MAX_FILE_BYTES,
    approve_batch,
    batch_result,
    cancel_batch,
    get_batch,
    pause_batch,
    resume_batch,
    show_progress_in,
    upload_batch,
)
from core.payouts.models import BatchStatus

router = Router(name="batches")

LIST_SUFFIXES = (".xlsx", ".csv")
SHOWN_PROBLEMS = 10  # a chat message holds 4 096 characters; every row is in the 📥 result file


class BulkPayout(StatesGroup):
    file = State()
    channel = State()  # the file is in; which channel pays it (a business with several)


class AnyFile(BaseFilter):
    async def __call__(self, message: Message) -> bool:
        return message.document is not None


class PayoutList(BaseFilter):
    """A file named like a payout list: the owner may drop one into the chat without a command."""

    async def __call__(self, message: Message) -> bool:
        doc = message.document
        return doc is not None and (doc.file_name or "").lower().endswith(LIST_SUFFIXES)


def _rows(n: int) -> str:
    return f"{n:,} row" + ("" if n == 1 else "s")


def _problem_lines(problems: list[dict[str, Any]]) -> list[str]:
    lines = [f"• Row {p['row']}: {escape(str(p['reason']))}" for p in problems[:SHOWN_PROBLEMS]]
    if len(problems) > SHOWN_PROBLEMS:
        lines.append(f"• …and {len(problems) - SHOWN_PROBLEMS:,} more: every row is in the 📥 file.")
    return lines


def preview_text(b: BatchOut, channel: PayoutChannel | None = None) -> str:
    refused = [p for p in b.problems if not p.get("duplicate")]
    duplicates = [p for p in b.problems if p.get("duplicate")]
    payable = b.rows_valid - b.duplicates
    lines = [f"📄 <b>{escape(b.filename)}</b>: {_rows(b.rows_total)}"]
    if not b.rows_valid:
        lines.append("Nothing in this file can be paid: fix the rows below and send the file again.")
    elif duplicates:
        lines.append(
            f"✅ {_rows(payable)} to pay; with the duplicates, {_rows(b.rows_valid)}: "
            f"<b>{format_kes(b.amount_total)}</b>"
        )
    else:
        lines.append(f"✅ {_rows(payable)} to pay: <b>{format_kes(b.amount_total)}</b>")
    if refused:
        lines += [f"❌ {len(refused):,} refused, never paid:", *_problem_lines(refused)]
    if duplicates:
        them = "duplicate, left out unless you include it"
        if len(duplicates) > 1:
            them = "duplicates, left out unless you include them"
        lines += [f"🔁 {len(duplicates):,} {them}:", *_problem_lines(duplicates)]
    if b.rows_valid and b.status is BatchStatus.draft:
        through = f" through {channel.label}" if channel is not None else ""
        lines.append(f"Paid{through} once you approve: nothing is paid before.")
    return "\n".join(lines)


def _button(text: str, action: str, batch_id: uuid.UUID) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=BatchCb(action=action, id=str(batch_id)).pack())


def preview_keyboard(b: BatchOut, actor: Actor) -> InlineKeyboardMarkup:
    payable = b.rows_valid - b.duplicates
    rows: list[list[InlineKeyboardButton]] = []
    if payable and b.duplicates:
        rows.append([_button(f"✅ Pay {_rows(payable)}, duplicates left out", "pay", b.id)])
    elif payable:
        rows.append([_button(f"✅ Pay {_rows(payable)} ({format_kes(b.amount_total)})", "pay", b.id)])
    if b.duplicates:
        label = (
            f"➕ Pay all {_rows(b.rows_valid)}, duplicates too"
            if payable
            else f"➕ Pay {_rows(b.rows_valid)} anyway"
        )
        rows.append([_button(f"{label} ({format_kes(b.amount_total)})", "dup", b.id)])
    if len(b.problems) > SHOWN_PROBLEMS and actor.core.can(Permission.payouts_read):
        rows.append([_button("📥 Every row and why", "result", b.id)])
    rows.append([_button("✖ Cancel", "drop", b.id)])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def progress_keyboard(b: BatchOut, actor: Actor) -> InlineKeyboardMarkup | None:
    rows: list[list[InlineKeyboardButton]] = []
    if b.status is BatchStatus.running:
        rows.append([_button("⏸ Pause", "pause", b.id)])
    elif b.status is BatchStatus.paused:
        rows.append([_button("▶️ Resume", "resume", b.id), _button("✖ Cancel the rest", "stop", b.id)])
    if b.status is not BatchStatus.draft and actor.core.can(Permission.payouts_read):
        rows.append([_button("📥 Result", "result", b.id)])
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


# --- the file --------------------------------------------------------------------------------------


@router.message(Command("payouts_bulk"))
@router.callback_query(BatchCb.filter(F.action == "start"))
async def ask_file(event: Message | CallbackQuery, state: FSMContext, actor: Actor | None) -> None:
    actor = need(actor)
    if isinstance(event, CallbackQuery):
        await event.answer()
    await payout_channels_for(actor)  # refused here, not after the list is sent
    await state.clear()
    await state.set_state(BulkPayout.file)
    if (where := target(event)) is not None:
        await where.answer(texts.BULK_ASK, reply_markup=with_cancel())


@router.message(StateFilter(BulkPayout.file), HasText())
async def not_a_file(message: Message) -> None:
    await message.answer(texts.BULK_NEED_FILE, reply_markup=with_cancel())


@router.message(StateFilter(BulkPayout.file), AnyFile())
@router.message(PayoutList())
async def got_file(message: Message, state: FSMContext, actor: Actor | None, bot: Bot) -> None:
    actor = need(actor)
    doc = message.document
    assert doc is not None  # the filters
    choices = await payout_channels_for(actor)
    if doc.file_size is not None and doc.file_size > MAX_FILE_BYTES:
        await state.set_state(BulkPayout.file)
        await message.answer(
            texts.invalid(f"The file is over {MAX_FILE_BYTES // (1024 * 1024)} MB: split the list."),
            reply_markup=with_cancel(),
        )
        return
    name = doc.file_name or "payouts"
    if len(choices) > 1:
        await state.set_state(BulkPayout.channel)
        await state.update_data(fid=doc.file_id, fname=name)
        await message.answer(texts.BULK_CHANNEL, reply_markup=with_cancel(channel_rows(choices, BatchCb)))
        return
    await state.clear()
    await _preview(message, state, actor, bot, file_id=doc.file_id, filename=name, channel=choices[0])


@router.callback_query(StateFilter(BulkPayout.channel), BatchCb.filter(F.action == "ch"))
async def picked_channel(
    query: CallbackQuery, callback_data: BatchCb, state: FSMContext, actor: Actor | None, bot: Bot
) -> None:
    actor = need(actor)
    await query.answer()
    data = await state.get_data()
    picked = next((c for c in await payout_channels_for(actor) if str(c.id) == callback_data.id), None)
    if picked is None or (where := target(query)) is None:
        return
    await state.clear()
    await _preview(
        where, state, actor, bot, file_id=str(data["fid"]), filename=str(data["fname"]), channel=picked
    )


async def _preview(
    where: Message,
    state: FSMContext,
    actor: Actor,
    bot: Bot,
    *,
    file_id: str,
    filename: str,
    channel: PayoutChannel,
) -> None:
    """Fetch the file from Telegram, have core check it into a draft batch, and show its preview. A file
    core cannot read is answered with why, and the next file is awaited."""
    try:
        buffer = await bot.download(file_id)
    except TelegramAPIError as exc:
        await state.set_state(BulkPayout.file)
        await where.answer(
            texts.invalid(f"Telegram did not hand me the file ({exc.message}): send it again.")
        )
        return
    assert buffer is not None  # no destination given: aiogram returns the bytes
    try:
        batch = await upload_batch(actor.core, filename=filename, data=buffer.read(), channel_id=channel.id)
    except InvalidInput as exc:
        await state.set_state(BulkPayout.file)
        await where.answer(texts.invalid(exc.message), reply_markup=with_cancel())
        return
    await where.answer(preview_text(batch, channel), reply_markup=preview_keyboard(batch, actor))


# --- the preview's buttons --------------------------------------------------------------------------


@router.callback_query(BatchCb.filter(F.action.in_({"pay", "dup"})))
async def approve(query: CallbackQuery, callback_data: BatchCb, actor: Actor | None) -> None:
    actor = need(actor)
    batch = await approve_batch(
        actor.core, uuid.UUID(callback_data.id), include_duplicates=callback_data.action == "dup"
    )
    await query.answer("Approved: paying now.")
    if (where := target(query)) is None:
        return
    with contextlib.suppress(TelegramBadRequest):  # the preview stays as it was, without its buttons
        await where.edit_reply_markup(reply_markup=None)
    await post_progress(where, batch, actor)


@router.callback_query(BatchCb.filter(F.action == "drop"))
async def drop(query: CallbackQuery, callback_data: BatchCb, actor: Actor | None) -> None:
    actor = need(actor)
    batch = await cancel_batch(actor.core, uuid.UUID(callback_data.id))
    await query.answer("Cancelled")
    if (where := target(query)) is not None:
        await where.edit_text(f"{preview_text(batch)}\n\n✖ Cancelled: nothing was paid.")


async def post_progress(where: Message, batch: BatchOut, actor: Actor) -> None:
    """Send the batch's progress message and hand it to the batch, which then edits it as rows finish
    (via the notification outbox). Rows that finished before it was handed over are brought in here."""
    sent = await where.answer(progress_text(batch), reply_markup=progress_keyboard(batch, actor))
    if not actor.core.can(Permission.payouts_read) or batch.status not in (
        BatchStatus.running,
        BatchStatus.paused,
    ):
        return
    await show_progress_in(actor.core, batch.id, chat_id=sent.chat.id, message_id=sent.message_id)
    await _refresh(sent, await get_batch(actor.core, batch.id), actor, shown=batch)


async def _refresh(message: Message, batch: BatchOut, actor: Actor, *, shown: BatchOut | None = None) -> None:
    if shown is not None and (progress_text(shown), shown.status) == (progress_text(batch), batch.status):
        return
    with contextlib.suppress(TelegramBadRequest):  # already showing this
        await message.edit_text(progress_text(batch), reply_markup=progress_keyboard(batch, actor))


# --- the progress message's buttons ----------------------------------------------------------------


@router.callback_query(BatchCb.filter(F.action == "pause"))
async def pause(query: CallbackQuery, callback_data: BatchCb, actor: Actor | None) -> None:
    actor = need(actor)
    batch = await pause_batch(actor.core, uuid.UUID(callback_data.id))
    await query.answer("Paused: rows already with M-Pesa finish, the rest wait.")
    if (where := target(query)) is not None:
        await _refresh(where, batch, actor)


@router.callback_query(BatchCb.filter(F.action == "resume"))
async def resume(query: CallbackQuery, callback_data: BatchCb, actor: Actor | None) -> None:
    actor = need(actor)
    batch = await resume_batch(actor.core, uuid.UUID(callback_data.id))
    await query.answer("Resumed: nothing is paid twice.")
    if (where := target(query)) is not None:
        await _refresh(where, batch, actor)


@router.callback_query(BatchCb.filter(F.action == "stop"))
async def stop(query: CallbackQuery, callback_data: BatchCb, actor: Actor | None) -> None:
    actor = need(actor)
    batch = await cancel_batch(actor.core, uuid.UUID(callback_data.id))
    await query.answer("Cancelled: the rows not sent yet never will be.")
    if (where := target(query)) is not None:
        await _refresh(where, batch, actor)


@router.callback_query(BatchCb.filter(F.action == "result"))
async def result(query: CallbackQuery, callback_data: BatchCb, actor: Actor | None) -> None:
    actor = need(actor, Permission.payouts_read)
    await query.answer("Preparing the file…")
    built = await batch_result(actor.core, uuid.UUID(callback_data.id))
    if (where := target(query)) is not None:
        await send_export(
            where, built, caption="📥 Every row of the file: paid or not, and why, with receipts."
        )


@router.callback_query(BatchCb.filter(F.action == "open"))
async def open_batch(query: CallbackQuery, callback_data: BatchCb, actor: Actor | None) -> None:
    """A batch from /payouts: a draft's preview again, or a progress message that follows it from now."""
    actor = need(actor, Permission.payouts_read)
    batch = await get_batch(actor.core, uuid.UUID(callback_data.id))
    await query.answer()
    if (where := target(query)) is None:
        return
    if batch.status is BatchStatus.draft:
        await where.answer(preview_text(batch), reply_markup=preview_keyboard(batch, actor))
    else:
        await post_progress(where, batch, actor)
