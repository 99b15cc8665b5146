"""What a USSD menu is made of: screens declared as data.

A tree is a dict of nodes by id. A node is a `Menu` (numbered options), a `Prompt` (one typed value,
checked by its `parse`) or an `Action` (does something, then ends the session or moves on). Titles and
option lists may be functions of the session, so a menu can depend on the tenant (a hotspot's plans)
without code paths of its own.
"""

from __future__ import annotations

import string
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from ussd.engine import Ctx

# The USSD bearer carries 182 characters; some Kenyan carriers cut earlier, so every screen, prefix
# included, is kept to 160 (refs/frontends.md §3.1).
MAX_SCREEN = 160

Text: TypeAlias = "str | Callable[[Ctx], Awaitable[str]]"
Next: TypeAlias = "str | Callable[[Ctx], str]"


class Invalid(Exception):
    """The value typed at a prompt (or the choice at a menu) is wrong: re-prompt with this reason."""


class EndSession(Exception):
    """Stop here with this message (a lock, a refusal that another try cannot fix)."""


@dataclass(frozen=True)
class End:
    text: str


@dataclass(frozen=True)
class Goto:
    """An action that continues the session at another node."""

    node: str
    note: str = ""


@dataclass(frozen=True)
class Option:
    key: str
    label: str
    to: str
    allow: Callable[[Ctx], bool] | None = None
    value: str | None = None  # kept in the session under the menu's `keep` key when chosen


@dataclass(frozen=True)
class Menu:
    id: str
    title: Text
    options: list[Option] | Callable[[Ctx], Awaitable[list[Option]]] = field(default_factory=list)
    footer: bool = True  # "0 Back 00 Home" when there is room
    keep: str | None = None  # a chosen option's `value` is stored under this key (a list of plans)


@dataclass(frozen=True)
class Prompt:
    id: str
    text: Text
    parse: Callable[[Ctx, str], Awaitable[None]]
    next: Next
    # A gate (the PIN) replaces the path instead of extending it: back never returns to it.
    gate: bool = False
    # Whether 0 and 00 navigate here; off where they are legitimate values.
    navigates: bool = True


@dataclass(frozen=True)
class Action:
    id: str
    run: Callable[[Ctx], Awaitable[End | Goto]]


Node = Menu | Prompt | Action

_PRINTABLE = set(string.printable) - set("\t\r\x0b\x0c")


def plain(text: str) -> str:
    """GSM-safe ASCII: handsets render anything else badly, if at all."""
    swapped = text.translate({0x2018: "'", 0x2019: "'", 0x201C: '"', 0x201D: '"', 0x2013: "-", 0x2014: "-"})
    ascii_text = unicodedata.normalize("NFKD", swapped).encode("ascii", "ignore").decode()
    return "".join(c for c in ascii_text if c in _PRINTABLE)


def fit(prefix: str, body: str, *, limit: int = MAX_SCREEN) -> str:
    """`CON `/`END ` + body within the limit. Lines are dropped from the middle of an over-long body
    (the first line says where you are, the last lines are the choices), then the rest is cut."""
    body = plain(body).strip("\n")
    room = limit - len(prefix)
    lines = body.split("\n")
    while len("\n".join(lines)) > room and len(lines) > 2:
        del lines[1]
    text = "\n".join(lines)
    if len(text) > room:
        text = text[: room - 2].rstrip() + ".."
    return prefix + text


def short(text: str, width: int) -> str:
    text = plain(text)
    return text if len(text) <= width else text[: width - 2].rstrip() + ".."
