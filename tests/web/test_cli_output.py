"""What the CLI prints for people: help without type noise, whole emails, outbox times that say their
zone and messages without Telegram's HTML."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import typer
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from typer.testing import CliRunner

from tests.web.test_cli_support import clean_env, lipapush
from web.cli import app
from web.cli_billing import terminal_text


def _walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():  # a group
        yield from _walk(sub, (*path, name))


COMMANDS = dict(_walk(typer.main.get_command(app)))
ALL_COMMANDS = list(COMMANDS)


class TestHelp:
    @pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: " ".join(p) or "lipapush")
    def test_no_type_column(self, path: tuple[str, ...]) -> None:
        result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "120"})
        assert result.exit_code == 0, result.output
        assert "--help" in result.output
        assert not re.search(r"<(str|bool|int|float|path|int range|float range)>", result.output), (
            result.output
        )

    def test_choices_stay(self) -> None:
        result = CliRunner().invoke(app, ["tenant", "create", "--help"], env={"COLUMNS": "120"})
        assert "<simulator|sandbox|production>" in result.output
        assert "<paybill|till>" in result.output

    def test_apikey_commands_say_what_they_do(self) -> None:
        result = CliRunner().invoke(app, ["apikey", "--help"], env={"COLUMNS": "200"})
        lines = {line.split()[1]: line for line in result.output.splitlines() if line.startswith("│ ")}
        assert "Revoke an API key: requests with it are refused from now on." in lines["revoke"]
        assert "A business's API keys" in lines["list"]

    def test_every_command_has_a_description(self) -> None:
        assert len(COMMANDS) > 40
        missing = [" ".join(path) for path, command in COMMANDS.items() if not command.help]
        assert missing == []


class TestTerminalText:
    def test_telegram_html_is_stripped_and_unescaped(self) -> None:
        body = "✅ <b>Paid</b> KES 150 from <i>Wanjiku &amp; Co</i>\n<code>QK12ABC</code>"
        assert terminal_text(body, html=True) == "✅ Paid KES 150 from Wanjiku & Co QK12ABC"

    def test_sms_is_left_as_written(self) -> None:
        assert terminal_text("Pay <b> here", html=False) == "Pay <b> here"

    def test_long_messages_are_cut_with_an_ellipsis(self) -> None:
        assert terminal_text("x" * 100, html=False) == "x" * 79 + "…"


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("cli-output") / "home"
    made = lipapush("db", "upgrade", env=clean_env(home), cwd=home.parent)
    assert made.returncode == 0, made
    return home


def _insert(home: Path, *rows: object) -> None:
    import core.models  # noqa: F401  - every mapper, so relationships resolve

    async def main() -> None:
        engine = create_async_engine(f"sqlite+aiosqlite:///{home / 'lipapush.db'}")
        try:
            async with AsyncSession(engine) as session:
                session.add_all(rows)
                await session.commit()
        finally:
            await engine.dispose()

    asyncio.run(main())


class TestOutbox:
    def test_times_in_eat_and_no_html(self, migrated: Path) -> None:
        from core.notify.models import Notification, NotifyChannel

        at = datetime(2026, 3, 1, 21, 30, tzinfo=UTC)  # 00:30 the next day in Nairobi
        _insert(
            migrated,
            Notification(
                kind="payment.result",
                channel=NotifyChannel.telegram,
                recipient="777",
                body="<b>Paid</b> KES 150 from Wanjiku &amp; Co",
                created_at=at,
            ),
            Notification(
                kind="payment.sms_result",
                channel=NotifyChannel.sms,
                recipient="254712345678",
                body="lipapush: PAID KES 150 from 0712345678.",
                created_at=at,
            ),
        )
        run = lipapush("outbox", env=clean_env(migrated), cwd=migrated.parent)
        assert run.returncode == 0, run
        header = next(line for line in run.stdout.splitlines() if " id " in line)
        assert "when (EAT)" in header
        [tg] = [line for line in run.stdout.splitlines() if "telegram" in line]
        assert "2026-03-02 00:30" in tg
        assert "Paid KES 150 from Wanjiku & Co" in tg
        assert "<b>" not in run.stdout and "&amp;" not in run.stdout
        [sms] = [line for line in run.stdout.splitlines() if " sms " in line]
        assert "lipapush: PAID KES 150 from 0712345678." in sms


class TestTenantList:
    def test_emails_are_never_cut_when_piped(self, migrated: Path) -> None:
        from core.tenants.models import Tenant

        email = "a-very-long-owner-address-for-the-business@some-long-domain.example.co.ke"
        _insert(
            migrated,
            Tenant(
                name="Mama Mboga and Sons Wholesale Limited",
                slug="mama-mboga-and-sons-wholesale",
                email=email,
                phone="254712345678",
            ),
        )
        run = lipapush("tenant", "list", env=clean_env(migrated, COLUMNS="80"), cwd=migrated.parent)
        assert run.returncode == 0, run
        [row] = [line for line in run.stdout.splitlines() if email in line]
        assert "mama-mboga-and-sons-wholesale" in row and "Mama Mboga and Sons Wholesale Limited" in row
        assert "…" not in run.stdout
