"""Uploaded files: identifiers, storage paths and the image probing ``sendPhoto`` needs."""

from __future__ import annotations

import mimetypes
import secrets
import struct
from dataclasses import dataclass
from typing import Any

# Telegram's own bot limits: 50 MB up, 20 MB down through getFile.
MAX_UPLOAD = 50 * 1024 * 1024
MAX_DOWNLOAD = 20 * 1024 * 1024
# The sides Telegram scales a photo down to; every smaller rendition becomes one PhotoSize.
PHOTO_SIDES = (90, 320, 800, 1280, 2560)


@dataclass(slots=True)
class StoredFile:
    file_id: str
    file_unique_id: str
    kind: str
    data: bytes
    file_path: str
    file_name: str | None = None
    mime_type: str | None = None
    width: int | None = None
    height: int | None = None

    def as_document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.data),
        }
        if self.file_name:
            doc["file_name"] = self.file_name
        if self.mime_type:
            doc["mime_type"] = self.mime_type
        return doc

    def as_photo_size(self) -> dict[str, Any]:
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.data),
            "width": self.width or 0,
            "height": self.height or 0,
        }

    def as_file(self) -> dict[str, Any]:
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.data),
            "file_path": self.file_path,
        }


class FileStore:
    """One bot's files; ids embed the bot id because real file ids only work for the bot that got them."""

    def __init__(self, bot_id: int) -> None:
        self.bot_id = bot_id
        self.by_id: dict[str, StoredFile] = {}
        self.by_path: dict[str, StoredFile] = {}
        # Every rendition's file_id leads to the whole set, so a photo resent by file_id lists all sizes.
        self.photo_sets: dict[str, list[StoredFile]] = {}
        self._seq = 0

    def add(
        self,
        kind: str,
        data: bytes,
        *,
        file_name: str | None = None,
        mime_type: str | None = None,
        size: tuple[int, int] | None = None,
    ) -> StoredFile:
        self._seq += 1
        folder, default_ext = ("photos", ".jpg") if kind == "photo" else ("documents", ".bin")
        ext = default_ext
        if file_name and "." in file_name:
            ext = "." + file_name.rsplit(".", 1)[1].lower()
        prefix = "AgAC" if kind == "photo" else "BQAC"
        stored = StoredFile(
            file_id=f"{prefix}{self.bot_id}_{self._seq}_{secrets.token_urlsafe(12)}",
            file_unique_id=f"AQAD{self._seq}{secrets.token_hex(4)}",
            kind=kind,
            data=data,
            file_path=f"{folder}/file_{self._seq}{ext}",
            file_name=file_name,
            mime_type=mime_type,
            width=size[0] if size else None,
            height=size[1] if size else None,
        )
        self.by_id[stored.file_id] = stored
        self.by_path[stored.file_path] = stored
        return stored

    def add_photo(self, data: bytes, size: tuple[int, int]) -> list[StoredFile]:
        # Renditions share the uploaded bytes: the simulator reports sizes but does not rescale.
        renditions = [self.add("photo", data, size=dims) for dims in photo_renditions(size)]
        for stored in renditions:
            self.photo_sets[stored.file_id] = renditions
        return renditions

    def clear(self) -> None:
        self.by_id.clear()
        self.by_path.clear()
        self.photo_sets.clear()


def guess_mime(file_name: str | None, declared: str | None) -> str | None:
    # Telegram infers the type from the name; a client's generic octet-stream says nothing.
    guessed = mimetypes.guess_type(file_name)[0] if file_name else None
    if guessed:
        return guessed
    return declared if declared and declared != "application/octet-stream" else None


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG, JPEG, GIF or WebP; None for anything Telegram could not decode either."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP" and len(data) >= 30:
        return _webp_size(data)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return int(width) & 0x3FFF, int(height) & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        # SOF0..SOF15 carry the frame size; C4, C8 and CC share the range but are tables.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return int(width), int(height)
        i += 2 + length
    return None


def photo_renditions(size: tuple[int, int]) -> list[tuple[int, int]]:
    """The (width, height) of each PhotoSize Telegram would list, smallest first."""
    width, height = size
    longest = max(width, height)
    out: list[tuple[int, int]] = []
    for side in PHOTO_SIDES:
        scale = min(1.0, side / longest)
        rendition = (max(1, round(width * scale)), max(1, round(height * scale)))
        if not out or rendition != out[-1]:
            out.append(rendition)
        if scale == 1.0:
            break
    return out
