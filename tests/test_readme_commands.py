"""Every `lipapush …` command README.md shows exists, with every option the README passes to it.

Commands are read from fenced code blocks and inline code; `router add|test|sync|list` stands for each
alternative. Each is run as `lipapush <subcommand path> --help`."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from web.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
INLINE = re.compile(r"`([^`]+)`")
# `lipapush` as a word: `lipapush.db` and `lipapush-exports` are not commands.
WORD = re.compile(r"(?<![\w./-])lipapush(?![\w./-])")
OPERATORS = {"&&", "||", ";", "|"}


def _shell_lines(text: str) -> list[str]:
    joined = re.sub(r"\\\n", " ", text)
    return [line for line in joined.splitlines() if line.strip()]


def _commands_in(snippet: str, top_level: set[str]) -> list[list[str]]:
    """The `lipapush` commands of one shell line: each `&&`/`;`/`|` part that runs lipapush first
    (after any VAR=value), or runs it inside another command (`docker run … image lipapush keygen`)."""
    try:
        words = shlex.split(snippet, comments=True)
    except ValueError:  # an unbalanced quote in prose, not shell
        words = snippet.split()
    parts: list[list[str]] = [[]]
    for word in words:
        if word in OPERATORS:
            parts.append([])
        else:
            parts[-1].append(word)
    found = []
    for part in parts:
        while part and re.match(r"[A-Za-z_]\w*=", part[0]):
            part = part[1:]
        if part[:1] == ["lipapush"]:
            found.append(part)
            continue
        for i, word in enumerate(part):
            if word == "lipapush" and part[i + 1 : i + 2] and part[i + 1] in top_level:
                found.append(part[i:])
                break
    return found


def readme_commands(readme: str) -> list[str]:
    """`lipapush …` commands as written, comments dropped, in README order, once each."""
    top_level = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    fenced = [m.group(1) for m in FENCE.finditer(readme)]
    prose = FENCE.sub("", readme)
    snippets = [line for block in fenced for line in _shell_lines(block)]
    # Inline code may wrap onto the next line of the paragraph.
    snippets += [" ".join(m.group(1).split()) for m in INLINE.finditer(prose)]
    found: list[str] = []
    for snippet in snippets:
        if not WORD.search(snippet):
            continue
        for words in _commands_in(snippet, top_level):
            command = " ".join(words)
            if command not in found:
                found.append(command)
    return found


@dataclass
class Resolved:
    path: list[str]
    command: Any  # typer's (vendored) click Command
    options: list[str]


def resolve(words: list[str]) -> list[Resolved]:
    """The subcommand(s) the words name and the options given to them; `a|b` names two commands."""
    root = typer.main.get_command(app)
    todo: list[tuple[Any, list[str], list[str]]] = [(root, [], words)]
    done: list[Resolved] = []
    while todo:
        command, path, rest = todo.pop(0)
        # Typer ships its own copy of click, so a group is known by its subcommands, not its class.
        subcommands: dict[str, Any] | None = getattr(command, "commands", None)
        if subcommands is not None and rest and not rest[0].startswith("-"):
            for name in rest[0].split("|"):
                sub = subcommands.get(name)
                assert sub is not None, f"`lipapush {' '.join([*path, name])}`: no such command"
                todo.append((sub, [*path, name], rest[1:]))
            continue
        options = [w.split("=", 1)[0] for w in rest if re.fullmatch(r"--?[A-Za-z][\w-]*(=.*)?", w)]
        done.append(Resolved(path, command, options))
    return done


COMMANDS = readme_commands(README.read_text(encoding="utf-8"))


def test_the_readme_shows_commands() -> None:
    # Guards the extraction itself: a broken regex would otherwise pass by finding nothing.
    assert "lipapush tenant create --name Mama Mboga --email owner@example.com" in " ".join(COMMANDS)
    assert any(c.startswith("lipapush commission set --tenant owner@example.com") for c in COMMANDS)
    assert len(COMMANDS) > 20


@pytest.mark.parametrize("shown", COMMANDS)
def test_readme_command_exists(shown: str) -> None:
    runner = CliRunner()
    for found in resolve(shlex.split(shown)[1:]):
        result = runner.invoke(app, [*found.path, "--help"])
        where = f"`lipapush {' '.join(found.path)} --help`"
        assert result.exit_code == 0, f"{where} exited {result.exit_code}: {result.output}"
        known = {o for p in found.command.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
        unknown = [o for o in found.options if o not in known]
        assert not unknown, f"README shows `{shown}`, but {where} has no {', '.join(unknown)}"


def test_extraction_on_a_sample() -> None:
    sample = (
        "```sh\npip install -e . && lipapush serve     # run it\n"
        "lipapush tenant create --name 'A B' \\\n    --phone 07 --environment simulator\n```\n"
        "Run `lipapush router add|list`, or `lipapush wallet adjust --tenant\n  x --amount -1`; "
        "the `lipapush` CLI keeps `sqlite:///./lipapush.db`; `docker build -t lipapush . && docker run\n"
        "lipapush lipapush keygen --env >> .env`, `X=1 lipapush web | tee log`.\n"
    )
    assert readme_commands(sample) == [
        "lipapush serve",
        "lipapush tenant create --name A B --phone 07 --environment simulator",
        "lipapush router add|list",
        "lipapush wallet adjust --tenant x --amount -1",
        "lipapush",
        "lipapush keygen --env >> .env",
        "lipapush web",
    ]
    [add, list_] = resolve(["router", "add|list", "--port=1", "-x", "-120.5"])
    assert (add.path, list_.path, add.options) == (["router", "add"], ["router", "list"], ["--port", "-x"])
