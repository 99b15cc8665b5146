"""`lipapush keys rotate`: every encrypted column of every model is re-encrypted under the new first key,
so the old key can be dropped; and every column holding a Fernet token is marked for it."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Enum, String, Text, func, select

import core.models  # noqa: F401  - every model on the metadata
from core.audit.models import AuditLog
from core.crypto import SecretBox
from core.db import ENCRYPTED, Base, encrypted_columns
from core.hotspot.models import Router
from core.hotspot.routers import routers
from core.hotspot.schemas import RouterIn
from core.runtime import unit_of_work
from core.tenants.models import MpesaChannel
from core.tenants.service import tenants
from tests.conftest import LiveServer
from tests.support.factories import channel_in, make_tenant
from tests.support.services import TestDatabase

# Every encrypted column there is. A new one is marked `info=encrypted("...")` and named `*_enc`, and
# added here: the two tests below fail if it is only one of those.
KNOWN = {
    ("mpesa_channels", "consumer_key_enc", "channel secret"),
    ("mpesa_channels", "consumer_secret_enc", "channel secret"),
    ("mpesa_channels", "passkey_enc", "channel secret"),
    ("mpesa_channels", "initiator_password_enc", "channel secret"),
    ("routers", "password_enc", "router password"),
    ("apps", "callback_secret_enc", "webhook secret"),
    ("apps", "previous_callback_secret_enc", "webhook secret"),
    ("webhook_endpoints", "secret_enc", "webhook secret"),
    ("webhook_endpoints", "previous_secret_enc", "webhook secret"),
}
FERNET_PREFIX = "gAAAAA"  # version byte 0x80, then a timestamp whose high bytes are zero


def test_the_registry_lists_exactly_the_encrypted_columns() -> None:
    assert {(c.table.name, c.name, c.info[ENCRYPTED]) for c in encrypted_columns()} == KNOWN


def test_every_enc_column_is_marked_and_every_marked_column_is_named_enc() -> None:
    named = {
        (c.table.name, c.name)
        for t in Base.metadata.sorted_tables
        for c in t.columns
        if c.name.endswith("_enc")
    }
    marked = {(c.table.name, c.name) for c in encrypted_columns()}
    assert named == marked, "an encrypted column is named *_enc and marked info=encrypted(...)"


def test_a_newly_marked_column_is_found() -> None:
    from sqlalchemy import Column, Integer, MetaData, Table

    from core.db import encrypted

    md = MetaData()
    Table(
        "webhooks",
        md,
        Column("id", Integer, primary_key=True),
        Column("signing_key_enc", Text, info=encrypted("webhook key")),
    )
    assert [(c.table.name, c.name, c.info[ENCRYPTED]) for c in encrypted_columns(md)] == [
        ("webhooks", "signing_key_enc", "webhook key")
    ]


async def _cli(database: TestDatabase, keys: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database.url, "ENCRYPTION_KEYS": keys}
    cli = Path(sys.executable).with_name("lipapush")
    return await asyncio.to_thread(
        subprocess.run, [str(cli), "keys", "rotate"], env=env, capture_output=True, text=True, timeout=60
    )


async def test_rotation_covers_channel_secrets_and_router_passwords_so_the_old_key_can_go(
    server: LiveServer, database: TestDatabase
) -> None:
    tenant, owner = await make_tenant(name="Kangemi WiFi", with_channel=False)
    old = server.settings.ENCRYPTION_KEYS[0]
    async with unit_of_work() as session:
        t = await tenants.get(session, tenant.id)
        await tenants.save_channel(
            session,
            tenant=t,
            box=server.rt.secrets,
            by=owner.id,
            data=channel_in(
                consumer_key="ck-rotate-1234", consumer_secret="cs-rotate-5678", passkey="pk-rotate-9"
            ),
        )
        router = await routers.add(
            session,
            tenant_id=tenant.id,
            data=RouterIn(
                name="stall-42", host="127.0.0.1", username="lipapush-api", password="router-pass-42"
            ),
            box=server.rt.secrets,
            by=owner.id,
        )
        router_id = router.id

    new = Fernet.generate_key().decode()
    done = await _cli(database, f"{new},{old}")
    assert done.returncode == 0, done.stdout + done.stderr
    said = re.fullmatch(
        r"re-encrypted (\d+) channel secrets, (\d+) router passwords? and (\d+) webhook secrets? "
        r"under the first key",
        " ".join(done.stdout.split()),  # the console wraps long lines
    )
    assert said, done.stdout
    counts = {"channel secret": int(said[1]), "router password": int(said[2]), "webhook secret": int(said[3])}
    # three a channel, and a fourth for a channel with an M-Pesa initiator (other tests' channels too)
    assert counts["channel secret"] >= 3 and counts["router password"] >= 1
    async with unit_of_work(readonly=True) as session:
        audit = await session.scalar(
            select(AuditLog).where(AuditLog.action == "secrets.rotated").order_by(AuditLog.id.desc()).limit(1)
        )
        channel = await session.scalar(select(MpesaChannel).where(MpesaChannel.tenant_id == tenant.id))
        stored = await session.get(Router, router_id)
    assert audit is not None and audit.detail["counts"] == counts and audit.detail["via"] == "cli"
    assert channel is not None and stored is not None

    # The old key is dropped: a runtime with only the new key still reads every secret.
    only_new = SecretBox([new])
    creds = tenants.credentials(channel, box=only_new, settings=server.settings)
    assert (
        creds.consumer_key,
        creds.consumer_secret.get_secret_value(),
        creds.passkey.get_secret_value(),
    ) == (
        "ck-rotate-1234",
        "cs-rotate-5678",
        "pk-rotate-9",
    )
    assert routers.address(stored, box=only_new).password == "router-pass-42"
    with pytest.raises(RuntimeError, match="cannot be decrypted"):
        SecretBox([old]).decrypt(stored.password_enc)

    # The whole database: every marked value decrypts with the new key alone, and no unmarked text
    # column holds a Fernet token (an encrypted column nobody marked would be left behind).
    marked = {(c.table.name, c.name) for c in encrypted_columns()}
    async with unit_of_work(readonly=True) as session:
        for column in encrypted_columns():
            for token in await session.scalars(select(column).where(column.is_not(None))):
                only_new.decrypt(token)
        for table in Base.metadata.sorted_tables:
            for column in table.columns:
                text = isinstance(column.type, String) and not isinstance(column.type, Enum)
                if (table.name, column.name) in marked or not text:
                    continue
                n = await session.scalar(
                    select(func.count()).select_from(table).where(column.like(f"{FERNET_PREFIX}%"))
                )
                assert n == 0, f"{table.name}.{column.name} holds Fernet tokens but is not marked encrypted"

    # The test database is shared with the running server, which only knows the old key: rotate back,
    # in pages of one row, twice (running it again is harmless and rewrites the same values).
    back = SecretBox([old, new])
    async with unit_of_work() as session:
        first = await tenants.rotate_secrets(session, box=back, batch=1)
    async with unit_of_work() as session:
        again = await tenants.rotate_secrets(session, box=back, batch=1)
    assert first == again == counts
    async with unit_of_work(readonly=True) as session:
        channel = await session.scalar(select(MpesaChannel).where(MpesaChannel.tenant_id == tenant.id))
        stored = await session.get(Router, router_id)
    assert channel is not None and stored is not None
    assert server.rt.secrets.decrypt(channel.consumer_secret_enc) == "cs-rotate-5678"
    assert routers.address(stored, box=server.rt.secrets).password == "router-pass-42"
