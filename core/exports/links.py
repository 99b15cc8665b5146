"""Signed, short-lived download links for exports sent where a file cannot go (an SMS).

A link is `/dl/<name>.<expiry>.<signature>`: `name` picks the file, `expiry` is a base-36 Unix time,
the signature an HMAC-SHA256 over both (truncated to 96 bits, plenty for a link that lives an hour),
so a link cannot be extended or pointed at another file. Short enough to fit an SMS with room to spare.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import shutil
import tempfile
import time
from pathlib import Path

_TOKEN = re.compile(r"^([A-Za-z0-9_-]{12})\.([0-9a-z]{1,8})\.([A-Za-z0-9_-]{16})$")
KEEP_FILES_SECONDS = 24 * 3600  # an email that waits for a dead SMTP server still finds its attachment


def downloads_dir(export_dir: str | None) -> Path:
    base = Path(export_dir) if export_dir else Path(tempfile.gettempdir())
    path = base / "lipapush-downloads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _sig(secret: str, name: str, expires: str) -> str:
    mac = hmac.new(f"download:{secret}".encode(), f"{name}.{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:12]).decode()


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out or "0"


def new_download(root: Path, filename: str) -> tuple[str, Path]:
    """A fresh slot for one file: (name, path to write). Old slots are swept on the way."""
    sweep(root)
    name = secrets.token_urlsafe(9)
    folder = root / name
    folder.mkdir()
    return name, folder / filename


def sign(secret: str, name: str, *, ttl_seconds: int, now: float | None = None) -> str:
    expires = _b36(int((now or time.time()) + ttl_seconds))
    return f"{name}.{expires}.{_sig(secret, name, expires)}"


def resolve(secret: str, root: Path, token: str, *, now: float | None = None) -> Path | None:
    """The file behind a link, or None when the link is malformed, forged, expired or swept."""
    m = _TOKEN.match(token)
    if m is None:
        return None
    name, expires, sig = m.groups()
    if not hmac.compare_digest(sig, _sig(secret, name, expires)):
        return None
    if int(expires, 36) < (now or time.time()):
        return None
    files = sorted((root / name).glob("*")) if (root / name).is_dir() else []
    return files[0] if files else None


def sweep(root: Path, *, now: float | None = None) -> None:
    cutoff = (now or time.time()) - KEEP_FILES_SECONDS
    for folder in root.iterdir():
        if folder.is_dir() and folder.stat().st_mtime < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
