"""Which Chromium the browser tests drive (tests/support/panel.find_chromium), on made-up machines."""

from __future__ import annotations

import stat
from pathlib import Path

from tests.support.panel import find_chromium


def _exe(path: Path) -> str:
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def _nothing(_: str) -> None:
    return None


def test_the_order_is_env_then_debian_then_path_then_playwright(tmp_path: Path) -> None:
    env_one, debian, on_path, pw = (_exe(tmp_path / n) for n in ("env", "debian", "path", "pw"))
    which = {"chromium-browser": on_path}.get

    assert find_chromium(pw, env={"LIPAPUSH_CHROMIUM": env_one}, paths=(debian,), which=which) == env_one
    assert find_chromium(pw, env={}, paths=(debian,), which=which) == debian
    assert find_chromium(pw, env={}, paths=(), which=which) == on_path
    assert find_chromium(pw, env={}, paths=(), which=_nothing) == pw


def test_paths_that_are_not_executable_files_are_passed_over(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("not a program")
    found = find_chromium(
        str(tmp_path / "never-downloaded"),
        env={"LIPAPUSH_CHROMIUM": "/nonexistent"},
        paths=(str(plain), str(tmp_path)),
        which=_nothing,
    )
    assert found is None
