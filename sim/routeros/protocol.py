"""RouterOS API wire format: length-prefixed words grouped into zero-terminated sentences (refs §3.2-3.4).

Words travel as bytes; they are decoded as UTF-8 with ``surrogateescape`` so any byte string survives a
decode/encode round trip unchanged (RouterOS itself is byte-oriented, librouteros defaults to ASCII).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

# Beyond this a length prefix starts with 0xF0 and carries the length in four more bytes.
MAX_LENGTH = 0xFFFFFFFF
# What the server is willing to buffer for one word; a 4-byte length could otherwise ask for 256 MiB.
DEFAULT_MAX_WORD = 16 * 1024 * 1024

_ENCODING = "utf-8"
_ERRORS = "surrogateescape"


class ProtocolError(Exception):
    """The peer sent bytes that are not a valid API stream (a reserved control byte, an oversized word)."""


def encode_length(length: int) -> bytes:
    """The 1-5 byte big-endian length prefix of a word of ``length`` bytes."""
    if length < 0:
        raise ValueError(f"negative length {length}")
    if length < 0x80:
        return length.to_bytes(1, "big")
    if length < 0x4000:
        return (length | 0x8000).to_bytes(2, "big")
    if length < 0x200000:
        return (length | 0xC00000).to_bytes(3, "big")
    if length < 0x10000000:
        return (length | 0xE0000000).to_bytes(4, "big")
    if length <= MAX_LENGTH:
        return b"\xf0" + length.to_bytes(4, "big")
    raise ValueError(f"length {length} does not fit the API length encoding")


def prefix_size(first: int) -> int:
    """How many bytes the length prefix starting with byte ``first`` takes (including that byte)."""
    if first < 0x80:
        return 1
    if first < 0xC0:
        return 2
    if first < 0xE0:
        return 3
    if first < 0xF0:
        return 4
    if first == 0xF0:
        return 5
    # 0xF8 and above are control bytes ("API client cannot proceed"); 0xF1-0xF7 encode nothing.
    raise ProtocolError(f"reserved control byte 0x{first:02X}")


def decode_length(prefix: bytes) -> int:
    """Inverse of :func:`encode_length`; ``prefix`` must be exactly the prefix bytes."""
    if not prefix:
        raise ProtocolError("empty length prefix")
    size = prefix_size(prefix[0])
    if len(prefix) != size:
        raise ProtocolError(f"length prefix 0x{prefix.hex()} should be {size} bytes")
    if size == 1:
        return prefix[0]
    if size == 2:
        return int.from_bytes(prefix, "big") & 0x3FFF
    if size == 3:
        return int.from_bytes(prefix, "big") & 0x1FFFFF
    if size == 4:
        return int.from_bytes(prefix, "big") & 0xFFFFFFF
    return int.from_bytes(prefix[1:], "big")


def encode_word(word: str | bytes) -> bytes:
    data = word if isinstance(word, bytes) else word.encode(_ENCODING, _ERRORS)
    return encode_length(len(data)) + data


def encode_sentence(words: Iterable[str | bytes]) -> bytes:
    return b"".join(encode_word(w) for w in words) + b"\x00"


def decode_word(data: bytes) -> str:
    return data.decode(_ENCODING, _ERRORS)


async def read_word(reader: asyncio.StreamReader, *, max_word: int = DEFAULT_MAX_WORD) -> str:
    """One word; ``""`` is the zero-length word ending a sentence. ``IncompleteReadError`` on EOF."""
    first = await reader.readexactly(1)
    size = prefix_size(first[0])
    prefix = first if size == 1 else first + await reader.readexactly(size - 1)
    length = decode_length(prefix)
    if length > max_word:
        raise ProtocolError(f"word of {length} bytes is larger than {max_word}")
    return decode_word(await reader.readexactly(length)) if length else ""


async def read_sentence(reader: asyncio.StreamReader, *, max_word: int = DEFAULT_MAX_WORD) -> list[str]:
    """Words up to the terminating zero-length word; an empty list is an empty sentence."""
    words: list[str] = []
    while word := await read_word(reader, max_word=max_word):
        words.append(word)
    return words


def attribute(name: str, value: str) -> str:
    return f"={name}={value}"


def reply(kind: str, attrs: Mapping[str, str] | None = None, *, tag: str | None = None) -> list[str]:
    """A reply sentence: ``!re``/``!done``/``!trap``/``!empty`` plus ``=name=value`` words and ``.tag``."""
    words = [kind, *(attribute(k, v) for k, v in (attrs or {}).items())]
    if tag is not None:
        words.append(f".tag={tag}")
    return words


@dataclass(slots=True)
class Command:
    """A parsed request sentence (refs §3.3): command word, attributes, ``.tag`` and query words in order."""

    path: str
    attrs: dict[str, str] = field(default_factory=dict)
    queries: list[str] = field(default_factory=list)
    tag: str | None = None
    # Words that are none of the above (RouterOS ignores them; kept for the calls log).
    other: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, words: Sequence[str]) -> Command:
        cmd = cls(path=words[0])
        for word in words[1:]:
            if word.startswith("="):
                name, sep, value = word[1:].partition("=")
                cmd.attrs[name] = value if sep else ""
            elif word.startswith("?"):
                cmd.queries.append(word)
            elif word.startswith(".tag="):
                cmd.tag = word[len(".tag=") :]
            else:
                cmd.other.append(word)
        return cmd
