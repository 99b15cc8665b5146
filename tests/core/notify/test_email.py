"""The SMTP sender against a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import email
from email.message import Message
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from core.notify.email import EmailConfigError, EmailSender
from core.notify.models import Notification, NotifyChannel
from tests.support.services import free_port


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append(
            (envelope.mail_from, envelope.rcpt_tos, email.message_from_bytes(envelope.content))
        )
        return "250 OK"


async def test_sends_with_the_attachment(tmp_path: Path) -> None:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        book = tmp_path / "customers-mama-mboga.xlsx"
        book.write_bytes(b"PK\x03\x04 not really a workbook")
        n = Notification(
            kind="export.customers",
            channel=NotifyChannel.email,
            recipient="owner@shop.co.ke",
            subject="Mama Mboga: customer list (3 customers)",
            body="Your lipapush customer list is attached.",
            attachment_path=str(book),
        )
        await EmailSender.from_url(f"smtp://127.0.0.1:{port}?from=books@lipapush.test").send(n)
    finally:
        controller.stop()
    [(sender, to, msg)] = inbox.messages
    assert (sender, to, msg["Subject"]) == (
        "books@lipapush.test",
        ["owner@shop.co.ke"],
        "Mama Mboga: customer list (3 customers)",
    )
    parts = [p for p in msg.walk() if p.get_filename()]
    assert [(p.get_filename(), p.get_content_type()) for p in parts] == [
        ("customers-mama-mboga.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    ]
    assert parts[0].get_payload(decode=True) == book.read_bytes()


def test_url_forms() -> None:
    s = EmailSender.from_url("smtps://me%40x.com:p%2Fw@mail.example.com")
    assert (s.host, s.port, s.tls, s.username, s.password, s.sender) == (
        "mail.example.com",
        465,
        True,
        "me@x.com",
        "p/w",
        "lipapush@mail.example.com",
    )
    with pytest.raises(EmailConfigError, match="SMTP_URL must look like"):
        EmailSender.from_url("http://mail.example.com")
