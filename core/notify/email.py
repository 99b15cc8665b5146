"""Sending outbox email over SMTP (SMTP_URL), with an optional file attachment.

The standard library's smtplib in a worker thread: email leaves from jobs, never from a request, and
a message a minute does not justify another dependency.

SMTP_URL forms: `smtp://user:pass@host:587` (STARTTLS when the server offers it), `smtps://…:465`
(TLS from the start), `smtp://host:25`; `?from=billing@example.com` sets the sender
(default `lipapush@<host>`).
"""

from __future__ import annotations

import asyncio
import mimetypes
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from core.notify.models import Notification

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class EmailConfigError(ValueError):
    pass


@dataclass(frozen=True)
class EmailSender:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None
    sender: str
    timeout: float = 30.0

    @classmethod
    def from_url(cls, url: str) -> EmailSender:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise EmailConfigError("SMTP_URL must look like smtp://user:pass@host:587 or smtps://host:465")
        tls = parts.scheme == "smtps"
        sender = parse_qs(parts.query).get("from", [f"lipapush@{parts.hostname}"])[0]
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if tls else 25),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            sender=sender,
        )

    def build(self, n: Notification) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = n.recipient
        msg["Subject"] = n.subject or "lipapush"
        msg.set_content(n.body)
        if n.attachment_path:
            path = Path(n.attachment_path)
            kind = XLSX if path.suffix == ".xlsx" else mimetypes.guess_type(path.name)[0]
            maintype, _, subtype = (kind or "application/octet-stream").partition("/")
            msg.add_attachment(path.read_bytes(), maintype=maintype, subtype=subtype, filename=path.name)
        return msg

    def _send_blocking(self, n: Notification) -> None:
        msg = self.build(n)
        smtp: smtplib.SMTP
        if self.tls:
            smtp = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with smtp:
            smtp.ehlo()
            if not self.tls and smtp.has_extn("starttls"):
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(msg)

    async def send(self, n: Notification) -> None:
        """Raises smtplib/OSError errors, so the job retries."""
        await asyncio.to_thread(self._send_blocking, n)
