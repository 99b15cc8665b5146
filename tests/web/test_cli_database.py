"""The embedded database lives in one data directory, whatever directory a command is run from, and a
command that finds no (migrated) database says so in one line instead of a traceback."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from core.config import data_dir, default_database_url, load_settings
from core.migrate import DatabaseNotReady, check_ready, database_location, sqlite_file
from tests.web.test_cli_support import clean_env, lipapush


@pytest.fixture
def no_lipapush_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("LIPAPUSH_HOME", "XDG_DATA_HOME", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.chdir(tmp_path)  # no .env from the checkout
    return tmp_path


class TestDataDir:
    def test_lipapush_home_wins(self, no_lipapush_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("XDG_DATA_HOME", str(no_lipapush_env / "xdg"))
        monkeypatch.setenv("LIPAPUSH_HOME", str(no_lipapush_env / "lp"))
        assert data_dir() == no_lipapush_env / "lp"

    def test_relative_lipapush_home_is_made_absolute(
        self, no_lipapush_env: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("LIPAPUSH_HOME", "here")
        assert data_dir() == (no_lipapush_env / "here").resolve()

    def test_xdg_data_home(self, no_lipapush_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("XDG_DATA_HOME", str(no_lipapush_env / "xdg"))
        assert data_dir() == no_lipapush_env / "xdg" / "lipapush"

    def test_relative_xdg_data_home_is_ignored(
        self, no_lipapush_env: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("XDG_DATA_HOME", "xdg")
        assert data_dir() == no_lipapush_env / "user" / ".local" / "share" / "lipapush"

    def test_home_fallback_and_the_default_database(self, no_lipapush_env: Path) -> None:
        expected = no_lipapush_env / "user" / ".local" / "share" / "lipapush"
        assert data_dir() == expected
        assert default_database_url() == f"sqlite+aiosqlite:///{expected}/lipapush.db"
        url = load_settings().DATABASE_URL
        assert url == default_database_url()
        assert not expected.exists()  # naming it creates nothing

    def test_database_url_still_wins(self, no_lipapush_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("DATABASE_URL", "postgresql://u:secret@db.example/lipa")
        assert load_settings().DATABASE_URL == "postgresql+asyncpg://u:secret@db.example/lipa"


class TestLocation:
    def test_sqlite_file_is_absolute(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        assert sqlite_file("sqlite+aiosqlite:///./x.db") == tmp_path / "x.db"
        assert sqlite_file("sqlite+aiosqlite://") is None
        assert sqlite_file("postgresql+asyncpg://u:p@h/d") is None

    def test_a_server_url_is_shown_without_its_password(self) -> None:
        assert (
            database_location("postgresql+asyncpg://u:secret@h:5432/d")
            == "postgresql+asyncpg://u:***@h:5432/d"
        )


class TestCheckReady:
    def test_missing_file(self, tmp_path: Path) -> None:
        db = tmp_path / "nested" / "lipapush.db"
        with pytest.raises(DatabaseNotReady) as exc:
            check_ready(f"sqlite+aiosqlite:///{db}")
        assert str(exc.value) == (
            f"No lipapush database at {db}: run `lipapush serve` once or `lipapush db upgrade`."
        )
        assert not db.parent.exists()

    def test_empty_file(self, tmp_path: Path) -> None:
        db = tmp_path / "lipapush.db"
        sqlite3.connect(db).close()
        with pytest.raises(DatabaseNotReady) as exc:
            check_ready(f"sqlite+aiosqlite:///{db}")
        assert str(exc.value) == (
            f"The lipapush database at {db} is empty (not migrated): "
            "run `lipapush serve` once or `lipapush db upgrade`."
        )

    def test_older_and_newer_revisions(self, tmp_path: Path) -> None:
        from core.migrate import upgrade

        db = tmp_path / "lipapush.db"
        url = f"sqlite+aiosqlite:///{db}"
        upgrade(url)
        check_ready(url)  # at head: no complaint
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE alembic_version SET version_num = 'from-the-future'")
        with pytest.raises(DatabaseNotReady) as exc:
            check_ready(url)
        assert str(exc.value) == (
            f"The lipapush database at {db} was migrated by a newer lipapush (revision from-the-future): "
            "upgrade lipapush to use it."
        )

    def test_not_a_database(self, tmp_path: Path) -> None:
        db = tmp_path / "lipapush.db"
        db.write_bytes(b"this is not sqlite" * 100)
        with pytest.raises(DatabaseNotReady) as exc:
            check_ready(f"sqlite+aiosqlite:///{db}")
        assert str(exc.value) == (
            f"Cannot open the lipapush database at {db} (file is not a database): check DATABASE_URL "
            "and that the database server is running."
        )


class TestCommandsWithoutADatabase:
    """As a new user hits it: a command run from some other directory before `serve` ever ran."""

    COMMANDS = (
        ("tenant", "list"),
        ("apikey", "list", "--tenant", "owner@example.com"),
        ("outbox",),
        ("ledger", "check"),
        ("subscription", "plans"),
    )

    @pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
    def test_one_line_and_no_file_left_behind(self, tmp_path: Path, args: tuple[str, ...]) -> None:
        home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
        elsewhere.mkdir()
        run = lipapush(*args, env=clean_env(home), cwd=elsewhere)
        assert run.returncode == 1, run
        assert run.stdout == "", run
        assert run.stderr == (
            f"No lipapush database at {home}/lipapush.db: "
            "run `lipapush serve` once or `lipapush db upgrade`.\n"
        ), run
        assert list(elsewhere.iterdir()) == []
        assert not home.exists()

    def test_db_upgrade_creates_it_in_the_data_directory(self, tmp_path: Path) -> None:
        home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
        elsewhere.mkdir()
        env = clean_env(home, COLUMNS="200")
        made = lipapush("db", "upgrade", env=env, cwd=elsewhere)
        assert made.returncode == 0, made
        assert made.stdout == f"database {home}/lipapush.db is up to date\n", made
        assert (home / "lipapush.db").is_file()
        assert list(elsewhere.iterdir()) == []

        # From yet another directory, the same database.
        listed = lipapush("tenant", "list", env=env, cwd=tmp_path)
        assert listed.returncode == 0, listed
        assert "slug" in listed.stdout and listed.stderr == "", listed

    def test_an_empty_database_file(self, tmp_path: Path) -> None:
        home = tmp_path / "home"
        home.mkdir()
        sqlite3.connect(home / "lipapush.db").close()
        run = lipapush("tenant", "list", env=clean_env(home), cwd=tmp_path)
        assert run.returncode == 1, run
        assert run.stderr == (
            f"The lipapush database at {home}/lipapush.db is empty (not migrated): "
            "run `lipapush serve` once or `lipapush db upgrade`.\n"
        ), run

    def test_an_unreachable_postgres(self, tmp_path: Path) -> None:
        env = clean_env(tmp_path / "home", DATABASE_URL="postgresql://u:secret@127.0.0.1:9/lipapush")
        run = lipapush("tenant", "list", env=env, cwd=tmp_path)
        assert run.returncode == 1, run
        [line] = run.stderr.splitlines()
        assert line.startswith(
            "Cannot open the lipapush database at postgresql+asyncpg://u:***@127.0.0.1:9/lipapush ("
        )
        assert line.endswith("): check DATABASE_URL and that the database server is running.")
        assert "secret" not in run.stderr
