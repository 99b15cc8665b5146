"""Building plain text plus Bot API entities; offsets count UTF-16 code units, as the Bot API does."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sim.telegram.params import BotApiError, bad_request


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def entities_error(detail: str) -> BotApiError:
    return bad_request(f"can't parse entities: {detail}")


@dataclass(slots=True)
class Builder:
    """Accumulates output text while tracking the UTF-16 offset that entities are measured in."""

    parts: list[str] = field(default_factory=list)
    offset: int = 0
    entities: list[dict[str, Any]] = field(default_factory=list)

    def emit(self, text: str) -> None:
        self.parts.append(text)
        self.offset += utf16_len(text)

    def add(self, kind: str, start: int, **extra: Any) -> None:
        if self.offset > start:
            self.entities.append({"type": kind, "offset": start, "length": self.offset - start, **extra})

    def finish(self) -> tuple[str, list[dict[str, Any]]]:
        return "".join(self.parts), self.entities


def byte_offset(source: str, index: int) -> int:
    return len(source[:index].encode())
