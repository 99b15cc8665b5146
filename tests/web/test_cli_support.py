"""Running the real `lipapush` command in a subprocess, against a data directory of the test's own."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from core.config import Settings

_LIPAPUSH = Path(sys.executable).with_name("lipapush")
LIPAPUSH: list[str] = (
    [str(_LIPAPUSH)] if _LIPAPUSH.exists() else [sys.executable, "-c", "from web.cli import main; main()"]
)


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """This environment minus every lipapush setting (a developer's DATABASE_URL must not reach the
    command), with LIPAPUSH_HOME pointing at `home`."""
    drop = set(Settings.model_fields)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in drop and not k.startswith(("PESAPAL_", "PLATFORM_", "LIPAPUSH_", "XDG_"))
    }
    env.update(LIPAPUSH_HOME=str(home), PYTHONUNBUFFERED="1", **extra)
    return env


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def lipapush(*args: str, env: dict[str, str], cwd: Path, timeout: float = 90) -> Run:
    done = subprocess.run(
        [*LIPAPUSH, *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)
