"""``MarkdownV2`` and legacy ``Markdown`` parse modes, strict where Telegram is strict.

MarkdownV2 rejects every unescaped reserved character (a price like "1.5" included), which is the classic
failure of bots that interpolate data into MarkdownV2 text; the simulator fails the same way.
"""

from __future__ import annotations

from typing import Any

from sim.telegram.entities import Builder, byte_offset, entities_error
from sim.telegram.params import BotApiError

_V2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_V2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "code": "Code",
    "pre": "Pre",
    "text_link": "TextUrl",
}


def _v2_error(kind: str, source: str, index: int) -> BotApiError:
    return entities_error(
        f"Can't find end of {_V2_NAMES[kind]} entity at byte offset {byte_offset(source, index)}"
    )


def _v2_simple_marker(source: str, i: int) -> tuple[str | None, int]:
    char = source[i]
    if char == "*":
        return "bold", 1
    if char == "~":
        return "strikethrough", 1
    if char == "_":
        return ("underline", 2) if source.startswith("__", i) else ("italic", 1)
    if char == "|" and source.startswith("||", i):
        return "spoiler", 2
    return None, 1


def _v2_link_target(source: str, i: int) -> tuple[str, int]:
    """Read ``(url)`` right after a link's ``]``; returns the url and the index after it."""
    if not source.startswith("(", i):
        return "", i
    url: list[str] = []
    i += 1
    while i < len(source) and source[i] != ")":
        if source[i] == "\\" and i + 1 < len(source):
            i += 1
        url.append(source[i])
        i += 1
    if i >= len(source):
        raise _v2_error("text_link", source, i)
    return "".join(url), i + 1


def parse_markdown_v2(source: str) -> tuple[str, list[dict[str, Any]]]:
    out = Builder()
    stack: list[tuple[str, int, int, str]] = []  # (entity type, output offset, source index, language)
    quote_start: int | None = None
    i, n = 0, len(source)
    while i < n:
        char = source[i]
        top = stack[-1][0] if stack else None
        if char == "\\" and i + 1 < n and 0 < ord(source[i + 1]) <= 126:
            out.emit(source[i + 1])
            i += 2
        elif top == "code" or top == "pre":
            closing = "`" if top == "code" else "```"
            if source.startswith(closing, i):
                kind, begin, _, language = stack.pop()
                out.add(kind, begin, **({"language": language} if language else {}))
                i += len(closing)
            else:
                out.emit(char)
                i += 1
        elif char == ">" and (i == 0 or source[i - 1] == "\n"):
            quote_start = out.offset if quote_start is None else quote_start
            i += 1
        elif char == "\n" and quote_start is not None and not source.startswith(">", i + 1):
            out.add("blockquote", quote_start)
            quote_start = None
            out.emit(char)
            i += 1
        elif char == "`":
            if source.startswith("```", i):
                newline = source.find("\n", i + 3)
                header = source[i + 3 : newline] if newline != -1 else ""
                language = header if header and not any(c.isspace() or c == "`" for c in header) else ""
                stack.append(("pre", out.offset, i, language))
                i = newline + 1 if language or (newline == i + 3) else i + 3
            else:
                stack.append(("code", out.offset, i, ""))
                i += 1
        elif char == "[":
            stack.append(("text_link", out.offset, i, ""))
            i += 1
        elif char == "]" and any(entry[0] == "text_link" for entry in stack):
            if top != "text_link":
                raise _v2_error(stack[-1][0], source, stack[-1][2])
            _, begin, _, _ = stack.pop()
            url, i = _v2_link_target(source, i + 1)
            if url:
                out.add("text_link", begin, url=url)
        else:
            marker, width = _v2_simple_marker(source, i)
            if marker is None:
                if char in _V2_RESERVED:
                    raise entities_error(
                        f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
                    )
                out.emit(char)
            elif top == marker:
                out.add(marker, stack.pop()[1])
            elif any(entry[0] == marker for entry in stack):
                raise _v2_error(stack[-1][0], source, stack[-1][2])
            else:
                stack.append((marker, out.offset, i, ""))
            i += width
    if stack:
        raise _v2_error(stack[-1][0], source, stack[-1][2])
    if quote_start is not None:
        out.add("blockquote", quote_start)
    return out.finish()


def parse_markdown(source: str) -> tuple[str, list[dict[str, Any]]]:
    """Legacy ``Markdown``: no nesting, and an unclosed marker fails instead of being taken literally."""
    out = Builder()
    i, n = 0, len(source)
    while i < n:
        char = source[i]
        if char == "\\" and i + 1 < n and source[i + 1] in "_*`[":
            out.emit(source[i + 1])
            i += 2
            continue
        if char not in "_*`[":
            out.emit(char)
            i += 1
            continue
        unclosed = entities_error(
            f"Can't find end of the entity starting at byte offset {byte_offset(source, i)}"
        )
        start = out.offset
        if char == "[":
            end = source.find("]", i + 1)
            if end == -1:
                raise unclosed
            url = ""
            after = end + 1
            if source.startswith("(", after):
                close = source.find(")", after)
                if close == -1:
                    raise unclosed
                url, after = source[after + 1 : close], close + 1
            out.emit(source[i + 1 : end])
            if url:
                out.add("text_link", start, url=url)
            i = after
        elif source.startswith("```", i):
            end = source.find("```", i + 3)
            if end == -1:
                raise unclosed
            body, language = source[i + 3 : end], ""
            head, newline, rest = body.partition("\n")
            if newline and head and not any(c.isspace() for c in head):
                body, language = rest, head
            out.emit(body)
            out.add("pre", start, **({"language": language} if language else {}))
            i = end + 3
        else:
            end = source.find(char, i + 1)
            if end == -1:
                raise unclosed
            out.emit(source[i + 1 : end])
            out.add({"*": "bold", "_": "italic", "`": "code"}[char], start)
            i = end + 1
    return out.finish()
