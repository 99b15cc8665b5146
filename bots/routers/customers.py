"""👥 The customer book: search by name or phone fragment, sort, filter, ten a page; and the book as
an Excel document, sent at once when small, built by a job (core.exports.jobs) when large.

Sort, filters and page ride in the callback data; a search text does not fit there (and is the
user's own words), so it is kept in the FSM data under a small number that the buttons carry."""

from __future__ import annotations

import contextlib
import math
from enum import IntEnum, StrEnum
from html import escape

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)
from pydantic import Field

from bots import texts
from bots.keyboards import MenuCb, with_cancel
from bots.middlewares import Actor
from bots.routers.transactions import since
from bots.tabs import back_row as _back
from bots.tabs import need as _need
from bots.tabs import send_export
from bots.tabs import target as _target
from core.access.permissions import Permission
from core.customers.schemas import CustomerOut, CustomerQuery, CustomerSort
from core.customers.use_cases import search_customers
from core.errors import InvalidInput, NotFound
from core.exports.jobs import customer_book_caption, preparing_text, queue_customer_book
from core.exports.use_cases import export_customers as export_customers_uc
from core.exports.xlsx import EAT
from core.money import format_kes, parse_shillings
from core.notify.texts import local_phone

router = Router(name="customers")

PAGE = 10
MAX_PAGE = 10_000
# A book with more rows than this is built by a job and arrives when ready (tests lower it).
INLINE_EXPORT_MAX_ROWS = 5_000
MAX_MIN_TOTAL = 100_000_000
MAX_SEARCH = 100  # CustomerQuery.q
KEPT_SEARCHES = 20


class Act(StrEnum):
    show = "v"
    search = "s"  # ask for a search text
    minimum = "m"  # ask for a minimum total paid
    export = "x"


class Sort(StrEnum):
    paid_total = "t"
    transactions = "n"
    last_seen = "l"


class Paid(StrEnum):
    paid = "p"
    never = "u"
    all = "a"


class Active(IntEnum):
    """Seen (asked to pay) in the last N days, counted in Nairobi time; 0: any time."""

    week = 7
    month = 30
    any = 0


SORTS: dict[Sort, tuple[str, CustomerSort]] = {
    Sort.paid_total: ("Total paid", CustomerSort.paid_total),
    Sort.transactions: ("Transactions", CustomerSort.requested_count),
    Sort.last_seen: ("Last seen", CustomerSort.last_seen_at),
}
PAID_LABELS: dict[Paid, str] = {Paid.paid: "Paid", Paid.never: "Never paid", Paid.all: "All"}
ACTIVE_LABELS: dict[Active, str] = {
    Active.week: "Active 7 days",
    Active.month: "Active 30 days",
    Active.any: "Any time",
}

NO_CUSTOMERS = "👥 No customers yet. They appear here after your first payment request."
NO_MATCH = "No customers match."
SEARCH_HINT = "<i>Search: /customers wanjiku or /customers 0722</i>"
ASK_SEARCH = "🔎 Send a name, or part of a phone number, to search for."
ASK_MIN_TOTAL = "💰 Show customers who paid at least how much in total, in KES? Send 0 for no minimum."
SEARCH_GONE = "This search is no longer kept. Search again: /customers followed by a name or phone."
NOTHING_TO_EXPORT = "No customers to export with these filters."
PREPARING = "⏳ Preparing the customer book…"


class CuCb(CallbackData, prefix="cu"):
    a: Act = Act.show
    o: Sort = Sort.paid_total
    f: Paid = Paid.all
    d: Active = Active.any
    m: int = Field(default=0, ge=0, le=MAX_MIN_TOTAL)  # minimum total paid, 0: none
    q: int = Field(default=0, ge=0)  # number of a search kept in the FSM data, 0: none
    p: int = Field(default=1, ge=1, le=MAX_PAGE)


class CustomerFind(StatesGroup):
    text = State()
    min_total = State()


# -- searches kept in the FSM data ---------------------------------------------------------------
async def _keep_search(state: FSMContext, text: str) -> int:
    data = await state.get_data()
    kept: dict[str, str] = dict(data.get("cu_searches") or {})
    number = int(data.get("cu_next") or 1)
    kept[str(number)] = text
    for old in sorted(kept, key=int)[:-KEPT_SEARCHES]:
        del kept[old]
    await state.update_data(cu_searches=kept, cu_next=number + 1)
    return number


async def _search_text(state: FSMContext, number: int) -> str | None:
    if not number:
        return None
    text = ((await state.get_data()).get("cu_searches") or {}).get(str(number))
    if text is None:
        raise NotFound(SEARCH_GONE)  # /cancel or another flow cleared the FSM data
    return str(text)


# -- the list ------------------------------------------------------------------------------------
def _query(view: CuCb, text: str | None, *, paged: bool) -> CustomerQuery:
    query = CustomerQuery(
        q=text,
        sort=SORTS[view.o][1],
        desc=True,
        has_paid={Paid.paid: True, Paid.never: False}.get(view.f),
        min_paid=view.m or None,
        seen_from=since(view.d),
    )
    return query.model_copy(update={"page": view.p, "per_page": PAGE}) if paged else query


def _filters(view: CuCb) -> list[str]:
    parts = []
    if view.f is Paid.paid:
        parts.append("paid")
    elif view.f is Paid.never:
        parts.append("never paid")
    if view.d is not Active.any:
        parts.append(f"active in the last {view.d.value} days")
    if view.m:
        parts.append(f"paid at least {format_kes(view.m)}")
    return parts


def _row(n: int, c: CustomerOut) -> str:
    seen = c.last_seen_at.astimezone(EAT).strftime("%d %b")
    return (
        f"{n}. {escape(c.name or '–')} {local_phone(c.phone)} · paid {format_kes(c.paid_total)} "
        f"in {c.paid_count} of {c.requested_count} · seen {seen}"
    )


def _button(text: str, view: CuCb, chosen: bool = False) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=f"✓ {text}" if chosen else text, callback_data=view.pack())


def _keyboard(view: CuCb, pages: int, *, more: bool = False) -> InlineKeyboardMarkup:
    """`more`: the count was capped (a big book), so there is a page after this one whatever `pages`
    says."""
    first = view.model_copy(update={"a": Act.show, "p": 1})
    rows = [
        [_button(label, first.model_copy(update={"o": o}), view.o is o) for o, (label, _) in SORTS.items()],
        [_button(label, first.model_copy(update={"f": f}), view.f is f) for f, label in PAID_LABELS.items()],
        [
            _button(label, first.model_copy(update={"d": d}), view.d is d)
            for d, label in ACTIVE_LABELS.items()
        ],
    ]
    tools = [
        _button("🔎 Search", view.model_copy(update={"a": Act.search})),
        _button(
            f"💰 Min {format_kes(view.m)}" if view.m else "💰 Min total",
            view.model_copy(update={"a": Act.minimum}),
        ),
    ]
    if view.q:
        tools.append(_button("✖ Clear search", first.model_copy(update={"q": 0})))
    rows.append(tools)
    nav = []
    if view.p > 1:
        nav.append(_button("‹ Previous", view.model_copy(update={"a": Act.show, "p": view.p - 1})))
    if view.p < pages or more:
        nav.append(_button("Next ›", view.model_copy(update={"a": Act.show, "p": view.p + 1})))
    if nav:
        rows.append(nav)
    rows.append([_button("📤 Export to Excel", view.model_copy(update={"a": Act.export, "p": 1}))])
    rows.append(_back())
    return InlineKeyboardMarkup(inline_keyboard=rows)


async def render(actor: Actor, view: CuCb, text: str | None) -> tuple[str, InlineKeyboardMarkup]:
    book = await search_customers(actor.core, query=_query(view, text, paged=True))
    filters = _filters(view)
    if book.total == 0 and not text and not filters:
        return NO_CUSTOMERS, InlineKeyboardMarkup(inline_keyboard=[_back()])
    pages = max(1, math.ceil(book.total / PAGE))
    # A big book's count stops at a cap (CustomerPage.total_capped): "10,000+", and no last page.
    count = f"{book.total:,}+" if book.total_capped else str(book.total)
    head = f"👥 <b>Customers</b> ({count})" + (f" matching “{escape(text)}”" if text else "")
    how = " · ".join([f"Sorted by {SORTS[view.o][0].lower()}", *filters])
    if book.total_capped:
        how += f" · page {view.p}"
    elif pages > 1:
        how += f" · page {view.p} of {pages}"
    start = (view.p - 1) * PAGE
    rows = [_row(start + n, c) for n, c in enumerate(book.items, start=1)] or [NO_MATCH]
    return "\n".join([head, how, *rows, "", SEARCH_HINT]), _keyboard(view, pages, more=book.total_capped)


async def _show_new(message: Message, actor: Actor, view: CuCb, text: str | None) -> None:
    body, markup = await render(actor, view, text)
    await message.answer(body, reply_markup=markup)


@router.message(Command("customers"))
async def customers_command(
    message: Message, command: CommandObject, state: FSMContext, actor: Actor | None
) -> None:
    actor = _need(actor, Permission.customers_read)
    if await state.get_state() in (CustomerFind.text.state, CustomerFind.min_total.state):
        await state.set_state(None)
    text = (command.args or "").strip()[:MAX_SEARCH].strip()
    view = CuCb(q=await _keep_search(state, text)) if text else CuCb()
    await _show_new(message, actor, view, text or None)


@router.callback_query(MenuCb.filter(F.action == "cust"))
async def customers_tab(query: CallbackQuery, actor: Actor | None) -> None:
    actor = _need(actor, Permission.customers_read)
    await query.answer()
    if (target := _target(query)) is not None:
        await _show_new(target, actor, CuCb(), None)


@router.callback_query(CuCb.filter(F.a == Act.show))
async def customers_page(
    query: CallbackQuery, callback_data: CuCb, state: FSMContext, actor: Actor | None
) -> None:
    actor = _need(actor, Permission.customers_read)
    text = await _search_text(state, callback_data.q)
    body, markup = await render(actor, callback_data, text)
    await query.answer()
    if (target := _target(query)) is not None:
        # Pressing the choice already made changes nothing, which Telegram refuses to "edit".
        with contextlib.suppress(TelegramBadRequest):
            await target.edit_text(body, reply_markup=markup)


# -- search and minimum total: asked for in a message ----------------------------------------------
@router.callback_query(CuCb.filter(F.a.in_({Act.search, Act.minimum})))
async def ask(query: CallbackQuery, callback_data: CuCb, state: FSMContext, actor: Actor | None) -> None:
    _need(actor, Permission.customers_read)
    await query.answer()
    searching = callback_data.a is Act.search
    await state.set_state(CustomerFind.text if searching else CustomerFind.min_total)
    await state.update_data(cu_view=callback_data.model_copy(update={"a": Act.show, "p": 1}).pack())
    if (target := _target(query)) is not None:
        await target.answer(ASK_SEARCH if searching else ASK_MIN_TOTAL, reply_markup=with_cancel())


async def _asked_view(state: FSMContext) -> CuCb:
    packed = (await state.get_data()).get("cu_view")
    try:
        return CuCb.unpack(str(packed)) if packed else CuCb()
    except (TypeError, ValueError):
        return CuCb()


@router.message(StateFilter(CustomerFind.text), F.text, ~F.text.startswith("/"))
async def got_search(message: Message, state: FSMContext, actor: Actor | None) -> None:
    actor = _need(actor, Permission.customers_read)
    text = (message.text or "").strip()[:MAX_SEARCH].strip()
    if not text:
        await message.answer(
            texts.invalid("Send some letters or digits to search for."), reply_markup=with_cancel()
        )
        return
    view = await _asked_view(state)
    view = view.model_copy(update={"q": await _keep_search(state, text)})
    await state.set_state(None)
    await _show_new(message, actor, view, text)


@router.message(StateFilter(CustomerFind.min_total), F.text, ~F.text.startswith("/"))
async def got_min_total(message: Message, state: FSMContext, actor: Actor | None) -> None:
    actor = _need(actor, Permission.customers_read)
    raw = (message.text or "").replace(",", "").strip()
    try:
        minimum = 0 if raw == "0" else parse_shillings(raw, field="minimum", maximum=MAX_MIN_TOTAL)
    except InvalidInput as exc:
        await message.answer(texts.invalid(exc.message), reply_markup=with_cancel())
        return
    view = await _asked_view(state)
    await state.set_state(None)
    await _show_new(message, actor, view.model_copy(update={"m": minimum}), await _search_text(state, view.q))


# -- export --------------------------------------------------------------------------------------
@router.callback_query(CuCb.filter(F.a == Act.export))
async def export_customers(query: CallbackQuery, callback_data: CuCb, actor: Actor | None) -> None:
    """The book with the list's sort and filters; a search text narrows the list, not the export."""
    actor = _need(actor, Permission.exports)
    target = _target(query)
    if target is None:
        await query.answer()
        return
    book_query = _query(callback_data, None, paged=False)
    label = " · ".join(_filters(callback_data))
    counted = await search_customers(actor.core, query=book_query.model_copy(update={"per_page": 1}))
    if counted.total == 0:
        await query.answer(NOTHING_TO_EXPORT, show_alert=True)
        return
    await query.answer("Preparing your Excel file…")
    if counted.total > INLINE_EXPORT_MAX_ROWS:
        note = await target.answer(preparing_text(counted.total))
        await queue_customer_book(
            tenant_id=actor.tenant_id,
            user_id=actor.user_id,
            chat_id=note.chat.id,
            message_id=note.message_id,
            query=book_query,
            mode=counted.mode,
            label=label,
        )
        return
    note = await target.answer(PREPARING)
    built = await export_customers_uc(actor.core, query=book_query)
    await send_export(target, built, caption=customer_book_caption(built.rows, label))
    await note.delete()
