"""Turning ``parse_mode`` markup into plain text plus entities, and failing where Telegram fails.

A stand-in that accepts any markup hides the most common production bug of HTML bots: a merchant name such as
"<Shop>" or an unbalanced tag interpolated into a message, which real Telegram rejects with 400 "can't parse
entities". The error texts follow the ones Telegram returns.
"""

from __future__ import annotations

import re
from typing import Any

from sim.telegram.entities import Builder, byte_offset, entities_error, utf16_len
from sim.telegram.markdown import parse_markdown, parse_markdown_v2
from sim.telegram.params import bad_request

_HTML_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY_RE = re.compile(r"&(?:#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6})|([a-zA-Z]+));")


def _decode_entity(source: str, i: int) -> tuple[str, int] | None:
    match = _ENTITY_RE.match(source, i)
    if match is None:
        return None
    dec, hexa, name = match.groups()
    if name is not None:
        char = _NAMED_ENTITIES.get(name)
        return None if char is None else (char, match.end())
    code = int(dec) if dec is not None else int(hexa, 16)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code), match.end()


def _parse_attributes(source: str, i: int, tag: str, tag_at: int) -> tuple[dict[str, str], int]:
    attrs: dict[str, str] = {}
    n = len(source)
    while True:
        while i < n and source[i].isspace():
            i += 1
        if i >= n:
            raise entities_error(f"Unclosed start tag at byte offset {byte_offset(source, tag_at)}")
        if source[i] == ">":
            return attrs, i + 1
        start = i
        while i < n and not source[i].isspace() and source[i] not in "=>/\"'":
            i += 1
        name = source[start:i].lower()
        if not name:
            raise entities_error(
                f'Empty attribute name in the tag "{tag}" at byte offset {byte_offset(source, tag_at)}'
            )
        while i < n and source[i].isspace():
            i += 1
        if i >= n or source[i] != "=":
            attrs[name] = ""
            continue
        i += 1
        while i < n and source[i].isspace():
            i += 1
        if i >= n:
            raise entities_error(f'Unclosed start tag "{tag}" at byte offset {byte_offset(source, tag_at)}')
        if source[i] in "\"'":
            quote, i = source[i], i + 1
            value: list[str] = []
            while i < n and source[i] != quote:
                decoded = _decode_entity(source, i) if source[i] == "&" else None
                if decoded is not None:
                    value.append(decoded[0])
                    i = decoded[1]
                else:
                    value.append(source[i])
                    i += 1
            i += 1
            attrs[name] = "".join(value)
        else:
            start = i
            while i < n and (source[i].isalnum() or source[i] in ".-"):
                i += 1
            if i < n and not source[i].isspace() and source[i] != ">":
                raise entities_error(f"Unexpected end of name token at byte offset {byte_offset(source, i)}")
            attrs[name] = source[start:i].lower()


def parse_html(source: str) -> tuple[str, list[dict[str, Any]]]:
    out = Builder()
    # Each open tag: (name, attributes, output offset where it began, source index of its "<").
    stack: list[tuple[str, dict[str, str], int, int]] = []
    i, n = 0, len(source)
    while i < n:
        char = source[i]
        if char == "&":
            decoded = _decode_entity(source, i)
            if decoded is not None:
                out.emit(decoded[0])
                i = decoded[1]
                continue
        if char != "<":
            out.emit(char)
            i += 1
            continue
        tag_at = i
        i += 1
        if i < n and source[i] == "/":
            i += 1
            start = i
            while i < n and not source[i].isspace() and source[i] != ">":
                i += 1
            end_name = source[start:i].lower()
            while i < n and source[i].isspace():
                i += 1
            if not stack:
                raise entities_error(f"Unexpected end tag at byte offset {byte_offset(source, tag_at)}")
            if i >= n or source[i] != ">":
                raise entities_error(f"Unclosed end tag at byte offset {byte_offset(source, tag_at)}")
            i += 1
            name, attrs, begin, _ = stack.pop()
            if end_name and end_name != name:
                raise entities_error(
                    f"Unmatched end tag at byte offset {byte_offset(source, tag_at)}, "
                    f'expected "</{name}>", found "</{end_name}>"'
                )
            _close_html(out, name, attrs, begin)
            continue
        start = i
        while i < n and not source[i].isspace() and source[i] != ">":
            i += 1
        if i >= n:
            raise entities_error(f"Unclosed start tag at byte offset {byte_offset(source, tag_at)}")
        name = source[start:i].lower()
        if name not in _HTML_TYPES:
            raise entities_error(
                f'Unsupported start tag "{name}" at byte offset {byte_offset(source, tag_at)}'
            )
        attrs, i = _parse_attributes(source, i, name, tag_at)
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise entities_error(
                f'Tag "span" must have class "tg-spoiler" at byte offset {byte_offset(source, tag_at)}'
            )
        stack.append((name, attrs, out.offset, tag_at))
    if stack:
        raise entities_error(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return out.finish()


def _close_html(out: Builder, name: str, attrs: dict[str, str], begin: int) -> None:
    kind = _HTML_TYPES[name]
    last = out.entities[-1] if out.entities else None
    same_span = last is not None and last["offset"] == begin and last["length"] == out.offset - begin
    if kind == "text_link":
        url = attrs.get("href", "")
        if url:
            out.add("text_link", begin, url=url)
    elif kind == "custom_emoji":
        out.add("custom_emoji", begin, custom_emoji_id=attrs.get("emoji-id", ""))
    elif kind == "blockquote":
        out.add("expandable_blockquote" if "expandable" in attrs else "blockquote", begin)
    elif kind == "pre" and same_span and last is not None and last["type"] == "code":
        # <pre><code class="language-x">: the inner code only names the language of the block.
        last["type"] = "pre"
    elif kind == "code" and "class" in attrs and attrs["class"].startswith("language-"):
        out.add("code", begin, language=attrs["class"].removeprefix("language-"))
    else:
        out.add(kind, begin)


def _trim(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Telegram strips surrounding whitespace from message text; entities are clipped to what is left."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    lead = utf16_len(text[: len(text) - len(text.lstrip())])
    size = utf16_len(stripped)
    kept: list[dict[str, Any]] = []
    for entity in entities:
        begin = max(entity["offset"] - lead, 0)
        end = min(entity["offset"] + entity["length"] - lead, size)
        if end > begin:
            kept.append({**entity, "offset": begin, "length": end - begin})
    return stripped, kept


def format_text(text: str, parse_mode: str | None, entities: Any) -> tuple[str, list[dict[str, Any]]]:
    """Plain text and entities as Telegram would store them; explicit ``entities`` win over parse_mode."""
    if isinstance(entities, list):
        parsed = text, [e for e in entities if isinstance(e, dict)]
    elif not parse_mode:
        parsed = text, []
    else:
        mode = parse_mode.lower()
        if mode == "html":
            parsed = parse_html(text)
        elif mode == "markdownv2":
            parsed = parse_markdown_v2(text)
        elif mode == "markdown":
            parsed = parse_markdown(text)
        else:
            raise bad_request("unsupported parse_mode")
    plain, found = _trim(*parsed)
    found.sort(key=lambda e: (e["offset"], -e["length"]))
    return plain, found


def command_entities(text: str) -> list[dict[str, Any]]:
    """The ``bot_command`` entity Telegram attaches to a message that starts with a command."""
    match = re.match(r"/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?", text)
    if match is None:
        return []
    return [{"type": "bot_command", "offset": 0, "length": utf16_len(match.group())}]
