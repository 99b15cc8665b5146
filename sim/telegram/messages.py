"""Bot API methods that act on chats: sending, editing and deleting messages, files, callback answers."""

from __future__ import annotations

import re
from typing import Any

from sim.telegram.files import MAX_DOWNLOAD, MAX_UPLOAD, StoredFile, guess_mime, image_size
from sim.telegram.formatting import format_text, utf16_len
from sim.telegram.params import BotApiError, Params, Upload, bad_request
from sim.telegram.state import BotState, Chat, StoredMessage, now

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the same as a "
    "current content and reply markup of the message"
)
_INLINE_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)


def chat_id_param(p: Params) -> int:
    value = p.values.get("chat_id")
    if value is None or value == "":
        raise bad_request("chat_id is empty")
    # Users cannot be addressed by @username, and the simulator only has private chats.
    if isinstance(value, str) and value.startswith("@"):
        raise bad_request("chat not found")
    return p.require_int("chat_id")


def validate_markup(markup: Any) -> dict[str, Any] | None:
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" not in markup:
        if "keyboard" in markup or markup.get("remove_keyboard") or markup.get("force_reply"):
            return markup
        raise bad_request("can't parse reply keyboard markup JSON object")
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request('field "inline_keyboard" of the InlineKeyboardMarkup should be an Array of Arrays')
    buttons = [button for row in rows for button in row]
    if len(buttons) > 100:
        raise bad_request("REPLY_MARKUP_TOO_LONG")
    for button in buttons:
        if not isinstance(button, dict) or not isinstance(button.get("text"), str):
            raise bad_request('can\'t parse inline keyboard button: Field "text" must be of type String')
        if not any(key in button for key in _INLINE_ACTIONS):
            raise bad_request(
                "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
            )
        data = button.get("callback_data")
        if "callback_data" in button and (
            not isinstance(data, str) or not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA
        ):
            raise bad_request("BUTTON_DATA_INVALID")
        url = button.get("url")
        if "url" in button and (not isinstance(url, str) or not re.match(r"(?:https?|tg)://\S+$", url)):
            raise bad_request("BUTTON_URL_INVALID")
    return markup


def _inline(markup: dict[str, Any] | None) -> dict[str, Any] | None:
    return markup if markup and "inline_keyboard" in markup else None


def _reply_to(chat: Chat, p: Params) -> StoredMessage | None:
    target = p.get_int("reply_to_message_id")
    tolerant = p.get_bool("allow_sending_without_reply")
    params = p.get_json("reply_parameters")
    if isinstance(params, dict) and params.get("message_id") is not None:
        target = int(params["message_id"])
        tolerant = bool(params.get("allow_sending_without_reply", tolerant))
    if target is None:
        return None
    message = chat.messages.get(target)
    if message is None or message.deleted:
        if tolerant:
            return None
        raise bad_request("message to be replied not found")
    return message


def _text(p: Params) -> tuple[str, list[dict[str, Any]]]:
    raw = p.get_str("text") or ""
    if not raw.strip():
        raise bad_request("message text is empty")
    text, entities = format_text(raw, p.get_str("parse_mode"), p.get_json("entities"))
    if not text:
        raise bad_request("text must be non-empty")
    if utf16_len(text) > MAX_TEXT:
        raise bad_request("message is too long")
    return text, entities


def _caption(p: Params) -> tuple[str | None, list[dict[str, Any]]]:
    raw = p.get_str("caption")
    if not raw or not raw.strip():
        return None, []
    text, entities = format_text(raw, p.get_str("parse_mode"), p.get_json("caption_entities"))
    if utf16_len(text) > MAX_CAPTION:
        raise bad_request("message caption is too long")
    return text or None, entities


def _outgoing(bot: BotState, chat: Chat, p: Params, **content: Any) -> dict[str, Any]:
    markup = validate_markup(p.get_json("reply_markup"))
    reply_to = _reply_to(chat, p)
    message = StoredMessage(
        message_id=chat.next_message_id(),
        date=now(),
        sender=bot.bot_user(),
        outgoing=True,
        parse_mode=p.get_str("parse_mode"),
        reply_markup=markup,
        reply_to=reply_to,
        **content,
    )
    return chat.store(message).to_api(chat.to_api())


async def send_message(bot: BotState, p: Params) -> Any:
    chat = bot.sendable_chat(chat_id_param(p))
    text, entities = _text(p)
    return _outgoing(bot, chat, p, text=text, entities=entities)


def _upload(p: Params, key: str) -> Upload | str:
    source = p.upload(key)
    if source is None:
        raise bad_request(f"there is no {key} in the request")
    if isinstance(source, Upload):
        if not source.data:
            raise bad_request("file must be non-empty")
        if len(source.data) > MAX_UPLOAD:
            raise BotApiError(413, "Request Entity Too Large")
    elif source.startswith(("http://", "https://")):
        # The simulator has no internet to fetch from; tests upload bytes instead.
        raise bad_request("failed to get HTTP URL content")
    return source


def _known_file(bot: BotState, file_id: str, kind: str) -> StoredFile:
    stored = bot.files.by_id.get(file_id)
    if stored is None:
        raise bad_request("wrong file identifier/HTTP URL specified")
    if stored.kind != kind:
        raise bad_request(f"can't use file of type {stored.kind.title()} as {kind.title()}")
    return stored


async def send_document(bot: BotState, p: Params) -> Any:
    chat = bot.sendable_chat(chat_id_param(p))
    source = _upload(p, "document")
    caption, caption_entities = _caption(p)
    if isinstance(source, Upload):
        mime = guess_mime(source.filename, source.content_type)
        stored = bot.files.add("document", source.data, file_name=source.filename, mime_type=mime)
    else:
        stored = _known_file(bot, source, "document")
    return _outgoing(
        bot, chat, p, document=stored.as_document(), caption=caption, caption_entities=caption_entities
    )


async def send_photo(bot: BotState, p: Params) -> Any:
    chat = bot.sendable_chat(chat_id_param(p))
    source = _upload(p, "photo")
    caption, caption_entities = _caption(p)
    if isinstance(source, Upload):
        size = image_size(source.data)
        if size is None:
            raise bad_request("IMAGE_PROCESS_FAILED")
        width, height = size
        if width + height > 10000 or max(width, height) > 20 * max(min(width, height), 1):
            raise bad_request("PHOTO_INVALID_DIMENSIONS")
        renditions = bot.files.add_photo(source.data, size)
    else:
        _known_file(bot, source, "photo")
        renditions = bot.files.photo_sets[source]
    photo = [stored.as_photo_size() for stored in renditions]
    return _outgoing(bot, chat, p, photo=photo, caption=caption, caption_entities=caption_entities)


async def get_file(bot: BotState, p: Params) -> Any:
    stored = bot.files.by_id.get(p.require_str("file_id", "file_id is empty"))
    if stored is None:
        raise bad_request("invalid file_id")
    if len(stored.data) > MAX_DOWNLOAD:
        raise bad_request("file is too big")
    return stored.as_file()


def _own_message(bot: BotState, p: Params, missing: str) -> tuple[Chat, StoredMessage]:
    if p.has("inline_message_id"):
        # The simulator has no inline mode, so no inline message can exist.
        raise bad_request("MESSAGE_ID_INVALID")
    chat = bot.chat(chat_id_param(p))
    if chat.blocked:
        raise BotApiError(403, "Forbidden: bot was blocked by the user")
    message_id = p.require_int("message_id", "message identifier is not specified")
    message = chat.messages.get(message_id)
    if message is None or message.deleted:
        raise bad_request(missing)
    if not message.outgoing:
        raise bad_request("message can't be edited")
    return chat, message


async def edit_message_text(bot: BotState, p: Params) -> Any:
    chat, message = _own_message(bot, p, "message to edit not found")
    if message.text is None:
        raise bad_request("there is no text in the message to edit")
    text, entities = _text(p)
    # Omitting reply_markup in an edit removes the inline keyboard, exactly as on Telegram.
    markup = _inline(validate_markup(p.get_json("reply_markup")))
    if text == message.text and entities == message.entities and markup == _inline(message.reply_markup):
        raise bad_request(NOT_MODIFIED)
    if text != message.text:
        message.edits.append(message.text)
    message.text, message.entities, message.reply_markup = text, entities, markup
    message.parse_mode = p.get_str("parse_mode")
    message.edit_date = now()
    return message.to_api(chat.to_api())


async def edit_message_reply_markup(bot: BotState, p: Params) -> Any:
    chat, message = _own_message(bot, p, "message to edit not found")
    markup = validate_markup(p.get_json("reply_markup"))
    if markup is not None and "inline_keyboard" not in markup:
        raise bad_request("inline keyboard expected")
    if markup == _inline(message.reply_markup):
        raise bad_request(NOT_MODIFIED)
    message.reply_markup = markup
    message.edit_date = now()
    return message.to_api(chat.to_api())


async def delete_message(bot: BotState, p: Params) -> Any:
    chat = bot.chat(chat_id_param(p))
    message = chat.messages.get(p.require_int("message_id", "message identifier is not specified"))
    if message is None or message.deleted:
        raise bad_request("message to delete not found")
    message.deleted = True
    return True


async def answer_callback_query(bot: BotState, p: Params) -> Any:
    record = bot.callbacks.get(p.get_str("callback_query_id") or "")
    if record is None or record.answered:
        raise bad_request("query is too old and response timeout expired or query ID is invalid")
    text = p.get_str("text")
    if text is not None and len(text) > 200:
        raise bad_request("MESSAGE_TOO_LONG")
    record.answered = True
    record.text = text
    record.show_alert = p.get_bool("show_alert")
    record.url = p.get_str("url")
    return True


async def send_chat_action(bot: BotState, p: Params) -> Any:
    bot.sendable_chat(chat_id_param(p))
    if p.get_str("action") not in _CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    return True
