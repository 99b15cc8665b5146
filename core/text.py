"""Text no database of ours can store, found (or removed) where it enters.

Postgres refuses NUL (U+0000) in text and JSON, and a lone UTF-16 surrogate (U+D800..U+DFFF, which
JSON's `\\ud800` escape or a non-UTF-8 command-line argument produce in a Python string) cannot even be
encoded as UTF-8 to send. Either fails deep inside a query, as an internal error, so each entry point
refuses (or, where refusing cannot help, strips) such text before anything reads it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping

# Any surrogate left in a Python string is unpaired: decoding joins every valid pair into one character.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable(text: str, where: str) -> str | None:
    """Why `text` cannot be stored, as a sentence about `where` ("Field 'name'"), or None if it can."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return f"{where} contains a NUL character (\\u0000), which cannot be stored: remove it and try again."
    return (
        f"{where} contains an unpaired UTF-16 surrogate (\\ud800-\\udfff), which is not valid text: "
        "send it as UTF-8 and try again."
    )


def storable(text: str) -> str:
    """`text` without its NUL characters and lone surrogates."""
    return _UNSTORABLE.sub("", text)


def shown(name: str) -> str:
    """A field name fit to echo back in an error, whatever the client sent as one."""
    return _UNSTORABLE.sub("\ufffd", name)


def strings_in(value: object, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    """Every string in a decoded JSON value, object keys included, with the path that leads to it."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            key_path = (*path, str(key))
            if isinstance(key, str):
                yield key_path, key
            yield from strings_in(item, key_path)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from strings_in(item, (*path, str(i)))


def strip_unstorable(value: object) -> object:
    """A decoded JSON value with every string made storable (keys too); the same object when clean."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, Mapping):
        return {storable(k) if isinstance(k, str) else k: strip_unstorable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strip_unstorable(v) for v in value]
    return value


def first_unstorable(found: Iterable[tuple[tuple[str, ...], str]]) -> tuple[str, str] | None:
    """The first of these (path, text) pairs (strings_in's) that cannot be stored, as the field's
    dotted name and why, in the words every entry point refuses it with; None if all can be."""
    for path, text in found:
        field = ".".join(shown(p) for p in path) or "body"
        problem = unstorable(text, f"Field '{field}'")
        if problem is not None:
            return field, problem
    return None


def has_unstorable(value: object) -> bool:
    return any(_UNSTORABLE.search(text) for _, text in strings_in(value))
