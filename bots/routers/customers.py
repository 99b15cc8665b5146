"""👥 The customer book: search, and the whole book as an Excel document."""

from __future__ import annotations

from html import escape

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)

from bots.keyboards import MenuCb
from bots.middlewares import Actor
from bots.tabs import back_row as _back
from bots.tabs import need as _need
from bots.tabs import target as _target
from core.auth.models import Role
from core.customers.schemas import CustomerQuery, CustomerSort
from core.customers.service import customers
from core.exports.books import customer_book
from core.exports.xlsx import export_filename
from core.money import format_kes
from core.notify.texts import local_phone
from core.runtime import runtime, unit_of_work
from core.tenants.service import tenants

router = Router(name="customers")


class CustCb(CallbackData, prefix="cu"):
    action: str  # export


@router.message(Command("customers"))
@router.callback_query(MenuCb.filter(F.action == "cust"))
async def customer_book_tab(event: Message | CallbackQuery, actor: Actor | None) -> None:
    actor = _need(actor, Role.owner, Role.manager)
    if isinstance(event, CallbackQuery):
        await event.answer()
    query = CustomerQuery(sort=CustomerSort.paid_total, per_page=10)
    if isinstance(event, Message) and event.text and len(event.text.split(maxsplit=1)) == 2:
        query = CustomerQuery(
            q=event.text.split(maxsplit=1)[1][:100], sort=CustomerSort.paid_total, per_page=10
        )
    async with unit_of_work(readonly=True) as session:
        book = await customers.search(session, tenant_id=actor.tenant_id, query=query)
    head = f"👥 <b>Customers</b> ({book.total})" + (f" matching “{escape(query.q)}”" if query.q else "")
    lines = [head] + [
        f"• {escape(c.name or '–')} {local_phone(c.phone)} · paid {format_kes(c.paid_total)} "
        f"in {c.paid_count}"
        for c in book.items
    ]
    lines.append("\n<i>Search: /customers wanjiku or /customers 0722</i>")
    export = InlineKeyboardButton(text="📤 Export to Excel", callback_data=CustCb(action="export").pack())
    if (target := _target(event)) is not None:
        await target.answer(
            "\n".join(lines), reply_markup=InlineKeyboardMarkup(inline_keyboard=[[export], _back()])
        )


@router.callback_query(CustCb.filter(F.action == "export"))
async def export_customers(query: CallbackQuery, actor: Actor | None) -> None:
    actor = _need(actor, Role.owner, Role.manager)
    await query.answer("Preparing your Excel file…")
    target = _target(query)
    if target is None:
        return
    note = await target.answer("⏳ Preparing the customer book…")
    async with unit_of_work(readonly=True) as session:
        tenant = await tenants.get(session, actor.tenant_id)
        path, count = await customer_book(
            session, tenant_id=actor.tenant_id, query=CustomerQuery(), directory=runtime().settings.EXPORT_DIR
        )
    try:
        data = path.read_bytes()
    finally:
        path.unlink(missing_ok=True)
    await target.answer_document(
        BufferedInputFile(data, filename=export_filename(f"customers-{tenant.slug}")),
        caption=f"👥 {count} customers",
    )
    await note.delete()
