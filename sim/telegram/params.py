"""Reading Bot API parameters the way Telegram does, whatever encoding the client chose.

aiogram sends form-urlencoded bodies, or multipart as soon as a file is attached, with every non-string value
JSON-serialised into a string; other clients send JSON or a query string. The handlers never see the
difference: they ask ``Params`` for a typed value and get a Bot API 400 when it is missing or malformed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request

# Parameters whose values are strings even when they look like numbers or JSON: decoding "123" as text into
# an int would change what the bot sent.
_STRING_PARAMS = frozenset(
    {
        "text",
        "caption",
        "data",
        "callback_query_id",
        "inline_message_id",
        "url",
        "secret_token",
        "parse_mode",
        "action",
        "language_code",
        "file_id",
        "document",
        "photo",
        "thumbnail",
        "ip_address",
        "business_connection_id",
        "message_effect_id",
        "description",
        "short_description",
        "name",
        "title",
        "phone_number",
        "first_name",
        "last_name",
        "emoji",
        "query",
    }
)


class BotApiError(Exception):
    """A failed call, rendered as Telegram's ``{"ok": false, ...}`` envelope with the same HTTP status."""

    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(detail: str) -> BotApiError:
    return BotApiError(400, f"Bad Request: {detail}")


@dataclass(frozen=True, slots=True)
class Upload:
    filename: str
    content_type: str | None
    data: bytes


def _decode(key: str, raw: Any) -> Any:
    if not isinstance(raw, str) or key in _STRING_PARAMS:
        return raw
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    # A bare JSON string would strip the quotes a client put there on purpose; keep the raw text.
    return raw if isinstance(value, str) else value


class Params:
    """One call's parameters: decoded values plus the uploaded parts ``attach://name`` can point at."""

    def __init__(self, values: dict[str, Any], uploads: dict[str, Upload]) -> None:
        self.values = {key: _decode(key, value) for key, value in values.items()}
        self.uploads = uploads

    def recorded(self) -> dict[str, Any]:
        """The parameters as a test wants to assert on them: files appear by name and size, not bytes."""
        out: dict[str, Any] = {}
        attached: set[str] = set()
        for key, value in self.values.items():
            part = None
            if isinstance(value, str) and value.startswith("attach://"):
                part = self.uploads.get(value.removeprefix("attach://"))
            if part is None:
                out[key] = value
            else:
                attached.add(value.removeprefix("attach://"))
                out[key] = {"filename": part.filename, "size": len(part.data)}
        for name, part in self.uploads.items():
            if name not in attached:
                out[name] = {"filename": part.filename, "size": len(part.data)}
        return out

    def has(self, key: str) -> bool:
        return self.values.get(key) not in (None, "")

    def get_str(self, key: str, default: str | None = None) -> str | None:
        value = self.values.get(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(value)
        if isinstance(value, str):
            return value
        return json.dumps(value)

    def require_str(self, key: str, empty_detail: str | None = None) -> str:
        value = self.get_str(key)
        if not value:
            raise bad_request(empty_detail or f'parameter "{key}" is required')
        return value

    def get_int(self, key: str, default: int | None = None) -> int | None:
        value = self.values.get(key)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise bad_request(f"invalid {key} specified")

    def require_int(self, key: str, empty_detail: str | None = None) -> int:
        value = self.get_int(key)
        if value is None:
            raise bad_request(empty_detail or f"{key} is empty")
        return value

    def get_bool(self, key: str, default: bool = False) -> bool:
        value = self.values.get(key)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            return value != 0
        return str(value).lower() in {"true", "1"}

    def get_json(self, key: str) -> Any:
        """A nested object; JSON bodies carry it decoded, forms carry it as a JSON string."""
        value = self.values.get(key)
        if isinstance(value, str):
            if not value:
                return None
            try:
                return json.loads(value)
            except ValueError:
                raise bad_request(f"can't parse {key} JSON object") from None
        return value

    def upload(self, key: str) -> Upload | str | None:
        """A file field: the uploaded part for ``attach://name``, else the string (file_id or URL) sent."""
        value = self.values.get(key)
        if value is None or value == "":
            # A client may also upload the file as a part named after the parameter itself.
            return self.uploads.get(key)
        text = self.get_str(key) or ""
        if text.startswith("attach://"):
            part = self.uploads.get(text.removeprefix("attach://"))
            if part is None:
                raise bad_request(f"failed to get HTTP URL content; file {text!r} not found in the request")
            return part
        return text


async def read_params(request: Request) -> Params:
    values: dict[str, Any] = dict(request.query_params)
    uploads: dict[str, Upload] = {}
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        raw = await request.body()
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                raise bad_request("can't parse JSON object") from None
            if not isinstance(body, dict):
                raise bad_request("JSON object expected")
            values.update(body)
    elif content_type in {"application/x-www-form-urlencoded", "multipart/form-data"}:
        # Uploads near Telegram's 50 MB bot limit must fit; text parts stay far below the default cap.
        form = await request.form(max_part_size=64 * 1024 * 1024)
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                uploads[key] = Upload(value.filename or key, value.content_type, await value.read())
            else:
                values[key] = value
    return Params(values, uploads)
