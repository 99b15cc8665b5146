"""The Telegram Bot API simulator over real HTTP, driven by the real aiogram client and Dispatcher.

Every test talks to its own bot (a fresh token), so tests share one server without sharing any state.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import re
import struct
import time
import zlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
)
from aiogram.filters import CommandObject, CommandStart
from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)
from aiogram.utils.keyboard import InlineKeyboardBuilder
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from sim.telegram import SimControlError, SimMessage, TelegramSimClient, create_app
from sim.telegram.formatting import format_text
from sim.telegram.params import BotApiError
from tests.support.servers import serving as serving_on_loopback

_bot_ids = itertools.count(7_000_001)


class PayoutCb(CallbackData, prefix="po"):
    action: str
    payout_id: int


# --- servers ---------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[str]:
    async with serving_on_loopback(app, lifespan="on") as url:
        yield url


class Receiver:
    """A bot's webhook endpoint; answers with whatever the test queued, else 200 ``{}``."""

    def __init__(self) -> None:
        self.base = ""
        self.hits: list[tuple[dict[str, str], Any]] = []
        self.replies: list[tuple[int, Any]] = []
        self.app = Starlette(routes=[Route("/hook", self._handle, methods=["POST"])])

    async def _handle(self, request: Request) -> JSONResponse:
        self.hits.append((dict(request.headers), await request.json()))
        status, body = self.replies.pop(0) if self.replies else (200, {})
        return JSONResponse(body, status_code=status)

    async def wait(self, count: int, within: float = 3.0) -> list[tuple[dict[str, str], Any]]:
        deadline = time.monotonic() + within
        while len(self.hits) < count:
            assert time.monotonic() < deadline, f"expected {count} webhook posts, got {len(self.hits)}"
            await asyncio.sleep(0.01)
        return self.hits


@pytest.fixture(scope="module")
async def sim_url() -> AsyncIterator[str]:
    async with serving(create_app()) as base:
        yield base


@pytest.fixture
def token() -> str:
    return f"{next(_bot_ids)}:TEST-token"


@pytest.fixture
async def bot(sim_url: str, token: str) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(sim_url))
    b = Bot(token=token, session=session, default=DefaultBotProperties(parse_mode="HTML"))
    yield b
    await b.session.close()


@pytest.fixture
async def tg(sim_url: str, token: str) -> AsyncIterator[TelegramSimClient]:
    async with TelegramSimClient(sim_url, token) as client:
        yield client


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0, trust_env=False) as client:
        yield client


async def started_user(tg: TelegramSimClient, name: str = "Amina") -> int:
    user = await tg.create_user(name, username=name.lower())
    await tg.send_text("/start")
    return user.id


def png(width: int, height: int) -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    rows = b"".join(b"\x00" + b"\x10\x80\xf0" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


# --- identity, auth, routing -----------------------------------------------------------------------------


async def test_get_me(bot: Bot) -> None:
    me = await bot.get_me()
    assert me.id == bot.id and me.is_bot
    assert me.username == f"sim{bot.id}_bot"
    assert me.first_name


async def test_bad_token_and_unknown_method(sim_url: str, token: str, http: httpx.AsyncClient) -> None:
    r = await http.post(f"{sim_url}/botnot-a-token/getMe")
    assert r.status_code == 401
    assert r.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    r = await http.post(f"{sim_url}/bot{token}/sendTelepathy")
    assert r.status_code == 404
    assert r.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
    # Method names are case-insensitive, GET works, and the envelope is Telegram's.
    r = await http.get(f"{sim_url}/bot{token}/GETME")
    assert r.status_code == 200 and r.json()["ok"] is True and r.json()["result"]["is_bot"] is True


async def test_token_allowlist(http: httpx.AsyncClient) -> None:
    async with serving(create_app(tokens={"42:ALLOWED"})) as base:
        assert (await http.post(f"{base}/bot42:ALLOWED/getMe")).status_code == 200
        r = await http.post(f"{base}/bot43:OTHER/getMe")
        assert r.status_code == 401 and r.json()["description"] == "Unauthorized"
        assert (await http.post(f"{base}/_sim/bot43:OTHER/users", json={})).status_code == 401


# --- messages --------------------------------------------------------------------------------------------


async def test_send_message_with_inline_keyboard(bot: Bot, tg: TelegramSimClient) -> None:
    chat_id = await started_user(tg)
    kb = InlineKeyboardBuilder()
    kb.button(text="Approve", callback_data=PayoutCb(action="ok", payout_id=17))
    kb.button(text="Open", url="https://example.com/p/17")
    sent = await bot.send_message(
        chat_id, "<b>Payout</b> of KES 1,500 &amp; fees?", reply_markup=kb.as_markup()
    )
    again = await bot.send_message(chat_id, "second")

    assert sent.message_id == 2 and again.message_id == 3  # the user's /start was message 1
    assert sent.chat.id == chat_id and sent.chat.type == "private"
    assert sent.from_user is not None and sent.from_user.id == bot.id and sent.from_user.is_bot
    assert sent.text == "Payout of KES 1,500 & fees?"
    assert sent.html_text == "<b>Payout</b> of KES 1,500 &amp; fees?"
    assert sent.reply_markup is not None
    assert sent.reply_markup.inline_keyboard[0][0].callback_data == "po:ok:17"

    transcript = await tg.transcript()
    assert [(m.message_id, m.sender) for m in transcript] == [(1, "user"), (2, "bot"), (3, "bot")]
    assert transcript[0].raw["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]
    assert transcript[1].button_texts == ["Approve", "Open"]
    assert transcript[1].raw["parse_mode"] == "HTML"
    (call,) = [c for c in await tg.calls("sendMessage") if c["params"]["text"].startswith("<b>")]
    assert call["params"]["chat_id"] == chat_id and call["params"]["parse_mode"] == "HTML"
    assert call["params"]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "po:ok:17"


async def test_edit_message_text(bot: Bot, tg: TelegramSimClient) -> None:
    chat_id = await started_user(tg)
    kb = InlineKeyboardBuilder()
    kb.button(text="Approve", callback_data=PayoutCb(action="ok", payout_id=1))
    sent = await bot.send_message(chat_id, "Approve payout?", reply_markup=kb.as_markup())

    edited = await bot.edit_message_text(
        "Approve payout of KES 10?", chat_id=chat_id, message_id=sent.message_id, reply_markup=kb.as_markup()
    )
    assert isinstance(edited, Message) and edited.edit_date is not None
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text(
            "Approve payout of KES 10?",
            chat_id=chat_id,
            message_id=sent.message_id,
            reply_markup=kb.as_markup(),
        )
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=chat_id, message_id=999)
    with pytest.raises(TelegramBadRequest, match="message can't be edited"):
        await bot.edit_message_text("x", chat_id=chat_id, message_id=1)  # the user's own /start
    # Leaving reply_markup out of an edit removes the keyboard, as on Telegram.
    await bot.edit_message_text("Approved", chat_id=chat_id, message_id=sent.message_id)

    last = await tg.last_bot_message()
    assert last is not None and last.text == "Approved" and last.buttons == []
    assert last.edits == ["Approve payout?", "Approve payout of KES 10?"]
    with pytest.raises(SimControlError, match="shows no button"):
        await tg.press(sent.message_id, "po:ok:1")


async def test_edit_reply_markup(bot: Bot, tg: TelegramSimClient) -> None:
    chat_id = await started_user(tg)
    markup = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="A", callback_data="a")]])
    sent = await bot.send_message(chat_id, "pick", reply_markup=markup)
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_reply_markup(chat_id=chat_id, message_id=sent.message_id, reply_markup=markup)
    other = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="B", callback_data="b")]])
    await bot.edit_message_reply_markup(chat_id=chat_id, message_id=sent.message_id, reply_markup=other)
    last = await tg.last_bot_message()
    assert last is not None and last.button_texts == ["B"] and last.text == "pick" and last.edits == []


async def test_delete_message(bot: Bot, tg: TelegramSimClient) -> None:
    chat_id = await started_user(tg)
    secret = await bot.send_message(chat_id, "Your PIN is 4321")
    assert await bot.delete_message(chat_id, secret.message_id) is True
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(chat_id, secret.message_id)
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(chat_id, 12345)

    transcript = await tg.transcript()
    assert transcript[-1].deleted and transcript[-1].text == "Your PIN is 4321"
    assert await tg.last_bot_message() is None
    ok_deletes = [c for c in await tg.calls("deleteMessage") if c["ok"]]
    assert [c["params"]["message_id"] for c in ok_deletes] == [secret.message_id]


async def test_limits_and_markup_errors(bot: Bot, tg: TelegramSimClient) -> None:
    chat_id = await started_user(tg)
    await bot.send_message(chat_id, "x" * 4096)
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(chat_id, "x" * 4097)
    too_long = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="A", callback_data="d" * 65)]]
    )
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(chat_id, "pick", reply_markup=too_long)
    with pytest.raises(TelegramBadRequest, match='can\'t parse entities: Unsupported start tag "shop"'):
        await bot.send_message(chat_id, "Paid to <Shop> Ltd")
    with pytest.raises(TelegramBadRequest, match='Can\'t find end tag corresponding to start tag "b"'):
        await bot.send_message(chat_id, "<b>Paid")
    with pytest.raises(TelegramBadRequest, match=re.escape("Character '.' is reserved")):
        await bot.send_message(chat_id, "KES 1.50", parse_mode="MarkdownV2")
    # A bare ampersand is fine in HTML, as on Telegram.
    assert (await bot.send_message(chat_id, "A&B Hardware")).text == "A&B Hardware"
    assert [m.message_id for m in await tg.bot_messages()] == [2, 3]


async def test_chat_errors(bot: Bot, tg: TelegramSimClient) -> None:
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(424242, "hello")
    never_started = await tg.create_user("Baraka")
    with pytest.raises(TelegramForbiddenError, match="bot can't initiate conversation with a user"):
        await bot.send_message(never_started.id, "hello")


async def test_blocked_user(bot: Bot, tg: TelegramSimClient) -> None:
    chat_id = await started_user(tg)
    await tg.block()
    with pytest.raises(TelegramForbiddenError) as caught:
        await bot.send_message(chat_id, "Payment received")
    assert caught.value.message == "Forbidden: bot was blocked by the user"
    with pytest.raises(TelegramForbiddenError):
        await bot.send_document(chat_id, BufferedInputFile(b"%PDF-1.4", filename="r.pdf"))
    # Writing to the bot again unblocks it, and each change is announced as my_chat_member.
    await tg.send_text("hi again")
    assert (await bot.send_message(chat_id, "welcome back")).text == "welcome back"
    updates = (await tg._http.get(f"{tg.base_url}/_sim/bot{tg.token}/updates")).json()
    statuses = [u["my_chat_member"]["new_chat_member"]["status"] for u in updates if "my_chat_member" in u]
    assert statuses == ["kicked", "member"]


# --- files -----------------------------------------------------------------------------------------------


async def test_send_document_and_download(bot: Bot, tg: TelegramSimClient) -> None:
    chat_id = await started_user(tg)
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 40
    sent = await bot.send_document(
        chat_id, BufferedInputFile(pdf, filename="receipt.pdf"), caption="<i>Receipt</i>"
    )
    doc = sent.document
    assert doc is not None
    assert (doc.file_name, doc.mime_type, doc.file_size) == ("receipt.pdf", "application/pdf", len(pdf))
    assert sent.caption == "Receipt" and sent.caption_entities is not None

    file = await bot.get_file(doc.file_id)
    assert file.file_path is not None and file.file_path.endswith(".pdf") and file.file_size == len(pdf)
    buffer = await bot.download(file)
    assert isinstance(buffer, io.BytesIO) and buffer.getvalue() == pdf
    assert await tg.file_bytes(doc.file_id) == pdf

    (call,) = await tg.calls("sendDocument")
    assert call["params"]["document"] == {"filename": "receipt.pdf", "size": len(pdf)}
    assert call["params"]["caption"] == "<i>Receipt</i>"

    resent = await bot.send_document(chat_id, doc.file_id)
    assert resent.document is not None and resent.document.file_unique_id == doc.file_unique_id
    last = await tg.last_bot_message()
    assert last is not None and last.document is not None and last.document["file_name"] == "receipt.pdf"
    with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
        await bot.send_document(chat_id, "no-such-file-id")


async def test_send_photo(bot: Bot, tg: TelegramSimClient) -> None:
    chat_id = await started_user(tg)
    image = png(600, 400)
    sent = await bot.send_photo(chat_id, BufferedInputFile(image, filename="qr.png"))
    assert sent.photo is not None
    assert [(p.width, p.height) for p in sent.photo] == [(90, 60), (320, 213), (600, 400)]
    largest = sent.photo[-1]
    downloaded = await bot.download(largest.file_id)
    assert isinstance(downloaded, io.BytesIO) and downloaded.getvalue() == image
    with pytest.raises(TelegramBadRequest, match="IMAGE_PROCESS_FAILED"):
        await bot.send_photo(chat_id, BufferedInputFile(b"not an image", filename="qr.png"))
    with pytest.raises(TelegramBadRequest, match="can't use file of type Photo as Document"):
        await bot.send_document(chat_id, largest.file_id)


# --- bot settings ----------------------------------------------------------------------------------------


async def test_my_commands(bot: Bot) -> None:
    assert await bot.get_my_commands() == []
    commands = [
        BotCommand(command="start", description="Start"),
        BotCommand(command="payouts", description="Payouts"),
    ]
    assert await bot.set_my_commands(commands) is True
    assert [c.command for c in await bot.get_my_commands()] == ["start", "payouts"]
    assert await bot.get_my_commands(language_code="sw") == []
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Bad Command", description="x")])
    assert await bot.delete_my_commands() is True
    assert await bot.get_my_commands() == []


# --- updates: long polling with the real Dispatcher ------------------------------------------------------


def conversation_router() -> Router:
    router = Router()

    @router.message(CommandStart(deep_link=True))
    async def start(message: Message, command: CommandObject) -> None:
        kb = InlineKeyboardBuilder()
        kb.button(text="Approve", callback_data=PayoutCb(action="ok", payout_id=17))
        kb.button(text="Reject", callback_data=PayoutCb(action="no", payout_id=17))
        await message.answer(f"Welcome! payload: <code>{command.args}</code>", reply_markup=kb.as_markup())

    @router.callback_query(PayoutCb.filter(F.action == "ok"))
    async def approve(query: CallbackQuery, callback_data: PayoutCb) -> None:
        assert isinstance(query.message, Message)
        await query.message.edit_text(f"Payout {callback_data.payout_id} approved")
        await query.answer("Done", show_alert=True)

    return router


async def test_dispatcher_long_polling_conversation(bot: Bot, tg: TelegramSimClient) -> None:
    dp = Dispatcher()
    dp.include_router(conversation_router())
    polling = asyncio.create_task(
        dp.start_polling(bot, handle_signals=False, close_bot_session=False, polling_timeout=5)
    )
    try:
        await tg.create_user("Amina")
        welcome = await tg.ask("/start abc", timeout=5)
        assert welcome.text == "Welcome! payload: abc"
        assert welcome.raw["entities"] == [{"type": "code", "offset": 18, "length": 3}]
        assert welcome.button_texts == ["Approve", "Reject"]

        press = await tg.press_button("Approve")
        done = await tg.wait_for_bot_message(
            predicate=lambda m: m.message_id == welcome.message_id and not m.buttons
        )
        assert done.text == "Payout 17 approved" and done.edits == ["Welcome! payload: abc"]
        answer = await tg.callback_answer(press["callback_query"]["id"])
        deadline = time.monotonic() + 3
        while not answer["answered"] and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            answer = await tg.callback_answer(press["callback_query"]["id"])
        assert answer["text"] == "Done" and answer["show_alert"] is True
        with pytest.raises(LookupError, match="no bot message"):
            await tg.press_button("Approve")
    finally:
        await dp.stop_polling()
        await polling
    polls = await tg.calls("getUpdates")
    assert polls and all(c["params"].get("timeout") == 5 for c in polls)
    assert sorted(polls[0]["params"]["allowed_updates"]) == ["callback_query", "message"]


async def test_get_updates_wire_semantics(
    sim_url: str, token: str, tg: TelegramSimClient, http: httpx.AsyncClient
) -> None:
    api = f"{sim_url}/bot{token}"
    await tg.create_user("Amina")
    first = await tg.send_text("one")
    second = await tg.send_text("two")
    r = await http.post(f"{api}/getUpdates", data={"limit": "1"})
    assert [u["update_id"] for u in r.json()["result"]] == [first["update_id"]]
    # Polling with an offset confirms everything before it, for good.
    r = await http.get(f"{api}/getUpdates", params={"offset": second["update_id"]})
    assert [u["message"]["text"] for u in r.json()["result"]] == ["two"]
    r = await http.post(f"{api}/getUpdates", json={"offset": second["update_id"] + 1, "timeout": 0})
    assert r.json() == {"ok": True, "result": []}

    # A long poll returns as soon as an update arrives, not at its timeout.
    started = time.monotonic()
    poll = asyncio.create_task(http.post(f"{api}/getUpdates", data={"timeout": "5"}))
    await asyncio.sleep(0.1)
    third = await tg.send_text("three")
    r = await poll
    assert time.monotonic() - started < 2
    assert [u["update_id"] for u in r.json()["result"]] == [third["update_id"]]

    # A negative offset keeps only that many of the newest updates.
    await tg.send_text("four")
    r = await http.post(f"{api}/getUpdates", data={"offset": "-1"})
    assert [u["message"]["text"] for u in r.json()["result"]] == ["four"]
    after = str(r.json()["result"][0]["update_id"] + 1)

    # A second poller ends the first with 409, as when two bot instances run.
    waiting = asyncio.create_task(http.post(f"{api}/getUpdates", data={"offset": after, "timeout": "5"}))
    await asyncio.sleep(0.1)
    await http.post(f"{api}/getUpdates", data={"offset": after})
    r = await waiting
    assert r.status_code == 409 and r.json()["description"].startswith(
        "Conflict: terminated by other getUpdates"
    )


async def test_form_encoding_variants(
    sim_url: str, token: str, tg: TelegramSimClient, http: httpx.AsyncClient
) -> None:
    chat_id = await started_user(tg)
    markup = '{"inline_keyboard":[[{"text":"Pay","callback_data":"pay:1"}]]}'
    r = await http.post(
        f"{sim_url}/bot{token}/sendMessage",
        data={"chat_id": str(chat_id), "text": "12345", "reply_markup": markup},
    )
    assert r.status_code == 200, r.text
    # Numeric-looking text stays text; nested JSON arrives decoded for assertions.
    assert r.json()["result"]["text"] == "12345"
    r = await http.post(
        f"{sim_url}/bot{token}/sendMessage",
        json={"chat_id": chat_id, "text": "json body", "reply_markup": {"remove_keyboard": True}},
    )
    assert r.status_code == 200 and "reply_markup" not in r.json()["result"]
    r = await http.post(f"{sim_url}/bot{token}/sendMessage", params={"chat_id": chat_id, "text": "via query"})
    assert r.json()["result"]["text"] == "via query"
    calls = await tg.calls("sendmessage")
    assert calls[0]["params"]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "pay:1"
    assert calls[0]["params"]["text"] == "12345"
    r = await http.post(f"{sim_url}/bot{token}/sendMessage", data={"text": "no chat"})
    assert r.status_code == 400 and r.json()["description"] == "Bad Request: chat_id is empty"


async def test_user_side_helpers(
    bot: Bot, tg: TelegramSimClient, sim_url: str, token: str, http: httpx.AsyncClient
) -> None:
    chat_id = await started_user(tg)
    ask = await bot.send_message(chat_id, "Share your M-Pesa number")
    update = await tg.share_contact("254712345678")
    assert update["message"]["contact"] == {
        "phone_number": "254712345678",
        "first_name": "Amina",
        "user_id": chat_id,
    }
    answer = await tg.send_text("0712345678", reply_to=ask.message_id)
    assert answer["message"]["reply_to_message"]["text"] == "Share your M-Pesa number"
    with pytest.raises(TimeoutError, match=r"#2 bot: 'Share your M-Pesa number'"):
        await tg.wait_for_bot_message(predicate=lambda m: "thanks" in m.content, timeout=0.1)
    # A file uploaded as a part named after the parameter (curl -F document=@x) works too.
    r = await http.post(
        f"{sim_url}/bot{token}/sendDocument",
        data={"chat_id": str(chat_id)},
        files={"document": ("payouts.csv", b"id,amount\n1,100\n", "text/csv")},
    )
    assert r.status_code == 200, r.text
    assert r.json()["result"]["document"]["mime_type"] == "text/csv"


# --- webhook ---------------------------------------------------------------------------------------------


async def test_webhook_delivery(bot: Bot, tg: TelegramSimClient) -> None:
    receiver = Receiver()
    async with serving(receiver.app) as base:
        receiver.base = base
        chat_id = await started_user(tg)  # queued before the webhook: delivered once it is set
        receiver.replies = [(500, {"error": "boom"})]  # the first attempt fails and is retried
        assert await bot.set_webhook(f"{base}/hook", secret_token="s3cr3t-Token", allowed_updates=["message"])
        update = await tg.send_text("/pay 100")

        hits = await receiver.wait(3)
        assert all(headers["x-telegram-bot-api-secret-token"] == "s3cr3t-Token" for headers, _ in hits)
        assert [body["message"]["text"] for _, body in hits] == ["/start", "/start", "/pay 100"]
        assert hits[2][1] == update and hits[2][0]["content-type"] == "application/json"

        info = await bot.get_webhook_info()
        assert info.url == f"{base}/hook" and info.pending_update_count == 0
        assert info.allowed_updates == ["message"]
        assert info.last_error_message == "Wrong response from the webhook: 500 Internal Server Error"
        with pytest.raises(
            TelegramConflictError, match="can't use getUpdates method while webhook is active"
        ):
            await bot.get_updates()

        # A webhook may answer with a Bot API call, which Telegram then executes.
        receiver.replies = [(200, {"method": "sendMessage", "chat_id": chat_id, "text": "paid via reply"})]
        await tg.send_text("status")
        reply = await tg.wait_for_bot_message(predicate=lambda m: m.text == "paid via reply")
        assert isinstance(reply, SimMessage)

        assert await bot.delete_webhook() is True
        assert (await bot.get_webhook_info()).url == ""
        assert await bot.get_updates(timeout=0) == []
        await tg.send_text("polling again")
        assert [u.message.text for u in await bot.get_updates() if u.message] == ["polling again"]
        assert len(receiver.hits) == 4


async def test_callback_answers_once(bot: Bot, tg: TelegramSimClient) -> None:
    chat_id = await started_user(tg)
    markup = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="Go", callback_data="go")]])
    sent = await bot.send_message(chat_id, "go?", reply_markup=markup)
    update = await tg.press(sent.message_id, "go")
    query = update["callback_query"]
    assert query["message"]["message_id"] == sent.message_id and query["chat_instance"]
    assert await bot.answer_callback_query(query["id"], text="ok") is True
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(query["id"])
    with pytest.raises(SimControlError, match="no bot message 1"):
        await tg.press(1, "go")  # the user's own message has no buttons


async def test_bots_are_isolated_and_reset(sim_url: str, bot: Bot, tg: TelegramSimClient) -> None:
    chat_id = await started_user(tg)
    other_token = f"{next(_bot_ids)}:OTHER"
    async with TelegramSimClient(sim_url, other_token) as other:
        with pytest.raises(SimControlError, match="no user"):
            await other.transcript(chat_id)
    await bot.send_message(chat_id, "hi")
    await tg.reset()
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(chat_id, "hi")


# --- markup parsing (no HTTP) ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "mode", "text", "entities"),
    [
        ("<b>a</b> <i>b</i>", "HTML", "a b", [("bold", 0, 1), ("italic", 2, 1)]),
        ('<a href="https://x.io/?a=1&amp;b=2">pay</a>', "HTML", "pay", [("text_link", 0, 3)]),
        ("😀 <u>x</u>", "HTML", "😀 x", [("underline", 3, 1)]),
        ("  padded <b>end</b>  ", "HTML", "padded end", [("bold", 7, 3)]),
        ("*b* _i_ 1\\.5", "MarkdownV2", "b i 1.5", [("bold", 0, 1), ("italic", 2, 1)]),
        ("*b* `c`", "Markdown", "b c", [("bold", 0, 1), ("code", 2, 1)]),
        ("<not markup>", None, "<not markup>", []),
    ],
)
def test_format_text(source: str, mode: str | None, text: str, entities: list[tuple[str, int, int]]) -> None:
    plain, found = format_text(source, mode, None)
    assert plain == text
    assert [(e["type"], e["offset"], e["length"]) for e in found] == entities


@pytest.mark.parametrize(
    ("source", "mode", "error"),
    [
        ("a < b", "HTML", 'Unsupported start tag "" at byte offset 2'),
        ("<b>x</i>", "HTML", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("x</b>", "HTML", "Unexpected end tag at byte offset 1"),
        ("<span>x</span>", "HTML", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ("*bold", "MarkdownV2", "Can't find end of Bold entity at byte offset 0"),
        ("snake_case", "Markdown", "Can't find end of the entity starting at byte offset 5"),
    ],
)
def test_format_text_errors(source: str, mode: str, error: str) -> None:
    with pytest.raises(BotApiError) as caught:
        format_text(source, mode, None)
    assert caught.value.code == 400
    assert caught.value.description == f"Bad Request: can't parse entities: {error}"
