from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import select

from core.crypto import SecretBox
from core.runtime import unit_of_work
from core.tenants.models import MpesaChannel
from tests.conftest import LiveServer
from tests.support.factories import channel_in, make_tenant
from tests.support.services import TestDatabase


async def test_keys_rotate_reencrypts_under_the_new_first_key(
    server: LiveServer, database: TestDatabase
) -> None:
    tenant, owner = await make_tenant(with_channel=False)
    old = server.settings.ENCRYPTION_KEYS[0]
    async with unit_of_work() as session:
        from core.tenants.service import tenants

        t = await tenants.get(session, tenant.id)
        await tenants.save_channel(
            session,
            tenant=t,
            box=server.rt.secrets,
            by=owner.id,
            data=channel_in(consumer_key="ck-rotate-1234", consumer_secret="cs-rotate-5678"),
        )
    new = Fernet.generate_key().decode()
    env = {**os.environ, "DATABASE_URL": database.url, "ENCRYPTION_KEYS": f"{new},{old}"}
    cli = Path(sys.executable).with_name("lipapush")
    done = await asyncio.to_thread(
        subprocess.run, [str(cli), "keys", "rotate"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "re-encrypted the secrets of" in done.stdout
    async with unit_of_work(readonly=True) as session:
        row = await session.scalar(select(MpesaChannel).where(MpesaChannel.tenant_id == tenant.id))
    assert row is not None
    only_new = SecretBox([new])
    assert only_new.decrypt(row.consumer_secret_enc) == "cs-rotate-5678"
    assert only_new.decrypt(row.consumer_key_enc) == "ck-rotate-1234"
    # The test database is shared with the running server, which only knows the old key: rotate back.
    back = await asyncio.to_thread(
        subprocess.run,
        [str(cli), "keys", "rotate"],
        env={**env, "ENCRYPTION_KEYS": f"{old},{new}"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert back.returncode == 0, back.stdout + back.stderr
    async with unit_of_work(readonly=True) as session:
        row = await session.scalar(select(MpesaChannel).where(MpesaChannel.tenant_id == tenant.id))
    assert row is not None and server.rt.secrets.decrypt(row.consumer_secret_enc) == "cs-rotate-5678"
