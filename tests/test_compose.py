"""docker-compose.yml, the Dockerfile and .env.example agree with the code. Docker is not on the test
machines, so `docker compose config` cannot run: the file is read here as compose would read it, and
every command it starts is parsed by the real `lipapush` command tree."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from core.config import Settings
from web.cli import app as cli_app

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
# safe_load resolves `&app` / `<<: *app` the way compose does.
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
ENV_EXAMPLE = (ROOT / ".env.example").read_text()
# `${NAME}`, `${NAME:-default}`, `${NAME:?error}`; `$$` is compose's escaped dollar.
COMPOSE_VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?([-?+])[^}]*)?\}")
# Set (`NAME=…`) or documented as one to add (`# NAME=…`).
ENV_LINE = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$", re.MULTILINE)


def env_lines(text: str) -> dict[str, str]:
    """What a dotenv reader sees: uncommented NAME=value lines, the last one winning."""
    return {m[2]: m[3] for m in ENV_LINE.finditer(text) if not m[1]}


def documented(text: str) -> set[str]:
    return {m[2] for m in ENV_LINE.finditer(text)}


def lipapush_command(argv: list[str]) -> Any:
    """Parse `lipapush …` as the installed script would, without running it: walk the command tree
    down to the command, then let it parse its options (unknown option, bad value → usage error).

    Duck-typed, because typer 0.2x carries its own copy of click: its groups and errors are not
    `click`'s classes."""
    assert argv[0] == "lipapush", argv
    command: Any = typer.main.get_command(cli_app)
    args = argv[1:]
    path = ["lipapush"]
    while hasattr(command, "get_command"):
        assert args, f"{' '.join(argv)}: names a group, not a command"
        sub = command.get_command(command.context_class(command), args[0])
        assert sub is not None, f"{' '.join(argv)}: no command {args[0]!r} under {' '.join(path)}"
        path.append(args.pop(0))
        command = sub
    try:
        return command.make_context(" ".join(path), list(args))
    except Exception as exc:
        if not hasattr(exc, "format_message"):  # a usage error, from whichever click
            raise
        raise AssertionError(f"{' '.join(argv)}: {exc.format_message()}") from None


def keygen_env() -> str:
    result = CliRunner().invoke(cli_app, ["keygen", "--env"])
    assert result.exit_code == 0, result.output
    return result.stdout


def service_commands() -> dict[str, list[str]]:
    return {name: svc["command"] for name, svc in SERVICES.items() if "command" in svc}


@pytest.mark.parametrize("service", sorted(n for n, c in service_commands().items() if c[0] == "lipapush"))
def test_service_command_is_a_real_cli_command(service: str) -> None:
    command = SERVICES[service]["command"]
    assert isinstance(command, list), f"{service}: use the exec form, so signals reach lipapush"
    lipapush_command(command)


def test_the_walker_refuses_what_is_not_there() -> None:
    with pytest.raises(AssertionError, match="no command 'workers'"):
        lipapush_command(["lipapush", "workers"])
    with pytest.raises(AssertionError, match="No such option: --thread"):
        lipapush_command(["lipapush", "worker", "--thread", "8"])
    with pytest.raises(AssertionError, match="Invalid value for '--threads'"):
        lipapush_command(["lipapush", "worker", "--threads", "eight"])
    assert lipapush_command(["lipapush", "worker", "--threads", "8"]).params["threads"] == 8


def test_every_app_service_shares_the_anchor() -> None:
    anchor = COMPOSE["x-app"]
    for name in ("web", "worker", "scheduler", "bot"):
        svc = SERVICES[name]
        for key in ("image", "env_file", "environment", "volumes", "depends_on"):
            assert svc[key] == anchor[key], (name, key)
    assert SERVICES["web"]["command"][:2] == ["lipapush", "web"]
    assert SERVICES["migrate"]["command"] == ["lipapush", "db", "upgrade"]


def test_bot_is_opt_in() -> None:
    """`lipapush bot` exits 1 without TELEGRAM_BOT_TOKEN; started by default, `restart` would loop it."""
    assert SERVICES["bot"]["profiles"] == ["bot"]
    assert "TELEGRAM_BOT_TOKEN" in documented(ENV_EXAMPLE)
    for name, svc in SERVICES.items():
        if name != "bot":
            assert "profiles" not in svc, f"{name} would not start with a plain `docker compose up`"
            assert "bot" not in svc.get("depends_on", {}), name


def test_dockerfile_command_is_a_real_cli_command() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    commands = re.findall(r"^(?:CMD|ENTRYPOINT)\s+(\[.*\])\s*$", dockerfile, re.MULTILINE)
    assert commands, "Dockerfile: no exec-form CMD or ENTRYPOINT"
    for raw in commands:
        argv = json.loads(raw)
        if argv[0] == "lipapush":
            lipapush_command(argv)


def test_every_compose_variable_is_in_env_example() -> None:
    used = {m[1] for m in COMPOSE_VAR.finditer(COMPOSE_TEXT)}
    assert used  # the pattern still matches what the file uses
    assert used <= documented(ENV_EXAMPLE), used - documented(ENV_EXAMPLE)


def production_required() -> set[str]:
    """Settings production refuses to start without, found by dropping each one from a working set."""
    working = {**env_lines(keygen_env()), "APP_ENV": "production", "PUBLIC_BASE_URL": "https://pay.example"}
    fields = set(Settings.model_fields)
    working = {k: v for k, v in working.items() if k in fields}
    Settings(_env_file=None, **working)  # type: ignore[arg-type,call-arg]
    required = set()
    for name in working.keys() - {"APP_ENV"}:
        try:
            Settings(_env_file=None, **{k: v for k, v in working.items() if k != name})  # type: ignore[arg-type,call-arg]
        except ValidationError:
            required.add(name)
    return required


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    # Settings read the process environment before any file: a developer's exports must not count.
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("clean_environ")
def test_production_requirements_are_documented() -> None:
    required = production_required()
    assert {"ENCRYPTION_KEYS", "SECRET_KEY", "PUBLIC_BASE_URL", "AT_CALLBACK_SECRET"} <= required
    assert required <= documented(ENV_EXAMPLE), required - documented(ENV_EXAMPLE)


@pytest.mark.usefixtures("clean_environ")
def test_env_example_plus_keygen_starts_in_production(tmp_path: Path) -> None:
    """The documented first start, `cp .env.example .env && lipapush keygen --env >> .env`, gives a
    .env that production accepts and that defines every variable compose insists on."""
    dotenv = tmp_path / ".env"
    dotenv.write_text(ENV_EXAMPLE + keygen_env())
    values = env_lines(dotenv.read_text())
    settings = Settings(_env_file=dotenv)  # type: ignore[call-arg]
    assert settings.APP_ENV == "production"
    assert len(settings.SECRET_KEY) >= 32
    must = {m[1] for m in COMPOSE_VAR.finditer(COMPOSE_TEXT) if m[2] == "?"}
    assert must == {"POSTGRES_PASSWORD"}
    for name in must | production_required():
        assert values.get(name), f"{name}: neither .env.example nor keygen --env sets it"
    # Each secret once: a second definition would silently win over the first in both dotenv readers.
    names = [m[2] for m in ENV_LINE.finditer(dotenv.read_text()) if not m[1]]
    assert len(names) == len(set(names)), names


def test_keygen_env_values_fit_their_settings() -> None:
    values = env_lines(keygen_env())
    assert set(values) == {"ENCRYPTION_KEYS", "SECRET_KEY", "AT_CALLBACK_SECRET", "POSTGRES_PASSWORD"}
    # Spliced unescaped into DATABASE_URL by docker-compose.yml.
    assert re.fullmatch(r"[A-Za-z0-9_\-]{24,}", values["POSTGRES_PASSWORD"])
    assert values != env_lines(keygen_env())  # fresh every time
