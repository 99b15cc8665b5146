from __future__ import annotations

import re
import secrets
import time
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, ColumnElement, Table, bindparam, case, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

import core.models  # noqa: F401  - every model's encrypted columns, for rotate_secrets
from core.audit.service import record
from core.auth.auditing import Auditor, recorder
from core.config import SANDBOX_PASSKEY, SANDBOX_SHORT_CODE, Settings
from core.crypto import SecretBox, mask_secret
from core.daraja.schemas import DarajaCredentials
from core.db import ENCRYPTED, encrypted_columns, utcnow
from core.errors import (
    ChannelNotConfigured,
    ChannelNotVerified,
    InvalidInput,
    NotFound,
    TenantNotActive,
)
from core.phones import Msisdn
from core.tenants.models import (
    ChannelKind,
    Environment,
    Mode,
    MpesaChannel,
    Tenant,
    TenantKind,
    TenantStatus,
)
from core.tenants.schemas import ChannelIn, ChannelOut

# Rows per batch when `rotate_secrets` walks a table.
ROTATE_BATCH = 500
PRIMARY_CHANNEL_NAME = "Main"


# core.tenants.service.channel_id_by_token: a callback URL's token → its channel, per process.
TOKEN_CACHE_SECONDS = 300.0
TOKEN_CACHE_SIZE = 10_000
_TOKEN_CACHE: dict[str, tuple[uuid.UUID, float]] = {}


def primary_mode_sql(
    tenant_id: ColumnElement[uuid.UUID] | InstrumentedAttribute[uuid.UUID],
) -> ColumnElement[str]:
    """The mode (`Mode` value) of a business's primary channel as an SQL expression, NULL while it has
    none: for a query that needs it in the same statement (core.payments.use_cases.book_mode_sql).
    Test or live by the channel's environment, mapped as `Environment.mode` maps it."""
    environment = (
        select(MpesaChannel.environment)
        .where(MpesaChannel.tenant_id == tenant_id, MpesaChannel.is_primary)
        .scalar_subquery()
    )
    return case({e.value: e.mode.value for e in Environment}, value=environment)


# Built once (building a statement per read cost as much as running it): the business with the mode
# of its primary channel, one statement.
_TENANT_AND_MODE = select(Tenant, primary_mode_sql(Tenant.id)).where(Tenant.id == bindparam("tenant_id"))
_PRIMARY_MODE = select(primary_mode_sql(bindparam("tenant_id")))


@dataclass(frozen=True)
class Payee:
    """Who a payer's number names: the business, and the channel when the number was one of its
    tills or paybills (None: its business number, so its primary channel)."""

    tenant: Tenant
    channel_id: uuid.UUID | None


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:60] or "business"


def validate_business_name(name: str) -> str:
    name = " ".join(name.split())
    if not 2 <= len(name) <= 120:
        raise InvalidInput("name", "Business name must be 2 to 120 characters.")
    return name


class TenantService:
    async def create(
        self,
        session: AsyncSession,
        *,
        name: str,
        email: str,
        phone: Msisdn,
        kind: TenantKind = TenantKind.business,
    ) -> Tenant:
        name = validate_business_name(name)
        base = slugify(name)
        slug = base
        while await session.scalar(select(Tenant.id).where(Tenant.slug == slug)):
            slug = f"{base}-{secrets.token_hex(2)}"
        tenant = Tenant(
            name=name,
            slug=slug,
            email=email,
            phone=phone,
            kind=kind,
            business_number=await self._new_business_number(session),
        )
        session.add(tenant)
        await session.flush()
        return tenant

    async def _new_business_number(self, session: AsyncSession) -> str:
        # Eight digits: M-Pesa short codes have 5 to 7, so a business number never reads as some
        # other business's Till or Paybill. Random rather than sequential, so the number of
        # businesses is not on show; a collision is simply drawn again.
        while True:
            number = str(10_000_000 + secrets.randbelow(90_000_000))
            if not await session.scalar(select(Tenant.id).where(Tenant.business_number == number)):
                return number

    async def find_payee(self, session: AsyncSession, code: str) -> Payee:
        """The business a payer means by `code`: its lipapush business number, or the Till or Paybill
        number one of its verified channels collects into, and then that channel, so the money lands
        in the till the payer named (a branch's, not the head office's). Only businesses that can take
        payments are found."""
        code = code.strip()
        if not code.isdigit() or not 4 <= len(code) <= 8:
            raise InvalidInput("code", "Enter the business number: 4 to 8 digits.")
        tenant = await session.scalar(select(Tenant).where(Tenant.business_number == code))
        channel_id: uuid.UUID | None = None
        if tenant is None:
            rows = (
                await session.execute(
                    select(Tenant, MpesaChannel.id)
                    .join(MpesaChannel, MpesaChannel.tenant_id == Tenant.id)
                    .where(
                        MpesaChannel.verified_at.is_not(None),
                        (MpesaChannel.till_number == code)
                        | (
                            (MpesaChannel.kind == ChannelKind.paybill)
                            & (MpesaChannel.business_short_code == code)
                        ),
                    )
                    .order_by(MpesaChannel.is_primary.desc(), MpesaChannel.created_at)
                    .limit(10)
                )
            ).all()
            if len({t.id for t, _ in rows}) > 1:
                raise InvalidInput(
                    "code", f"Several businesses use {code}. Ask for their lipapush business number."
                )
            if rows:
                tenant, channel_id = rows[0]
        if tenant is None or tenant.kind is TenantKind.platform:
            raise NotFound(f"No business has the number {code}. Check the number and try again.")
        if tenant.status is not TenantStatus.active or tenant.billing_hold:
            raise TenantNotActive(f"{tenant.name} cannot take payments right now. Pay them another way.")
        return Payee(tenant, channel_id)

    async def get(self, session: AsyncSession, tenant_id: uuid.UUID) -> Tenant:
        tenant = await session.get(Tenant, tenant_id)
        if tenant is None:
            raise NotFound("No such business.")
        return tenant

    async def get_with_mode(self, session: AsyncSession, tenant_id: uuid.UUID) -> tuple[Tenant, Mode | None]:
        """The business (as `get`) and the mode of its primary channel (None while it has none), in one
        statement."""
        row = (await session.execute(_TENANT_AND_MODE, {"tenant_id": tenant_id})).first()
        if row is None:
            raise NotFound("No such business.")
        return row[0], None if row[1] is None else Mode(row[1])

    async def primary_mode(self, session: AsyncSession, tenant_id: uuid.UUID) -> Mode | None:
        """The mode of the business's primary channel (None while it has none), without loading it."""
        value = await session.scalar(_PRIMARY_MODE, {"tenant_id": tenant_id})
        return None if value is None else Mode(value)

    async def get_channel(self, session: AsyncSession, tenant_id: uuid.UUID) -> MpesaChannel | None:
        """The business's primary channel (the bot's, USSD's and the panel's; None until it has one)."""
        return await session.scalar(
            select(MpesaChannel).where(MpesaChannel.tenant_id == tenant_id, MpesaChannel.is_primary)
        )

    async def channel_or_primary(
        self, session: AsyncSession, tenant_id: uuid.UUID, channel_id: uuid.UUID | None
    ) -> MpesaChannel | None:
        """The business's channel `channel_id` (None if it is not the business's), or with None its
        primary channel."""
        if channel_id is None:
            return await self.get_channel(session, tenant_id)
        channel = await session.get(MpesaChannel, channel_id)
        return channel if channel is not None and channel.tenant_id == tenant_id else None

    async def get_channel_by_token(self, session: AsyncSession, token: str) -> MpesaChannel | None:
        return await session.scalar(select(MpesaChannel).where(MpesaChannel.callback_token == token))

    async def channel_id_by_token(self, session: AsyncSession, token: str) -> uuid.UUID | None:
        """The channel a callback URL's token names. A channel's token never changes once made, so a
        found one is remembered by the process (for TOKEN_CACHE_SECONDS: a channel deleted with its
        business is forgotten by then, and its callbacks fail their foreign key meanwhile); an unknown
        token is asked every time, so a new channel's first callback is never refused."""
        if (hit := self.remembered_channel_id(token)) is not None:
            return hit
        now = time.monotonic()
        found = await session.scalar(select(MpesaChannel.id).where(MpesaChannel.callback_token == token))
        if found is not None:
            if len(_TOKEN_CACHE) >= TOKEN_CACHE_SIZE:
                _TOKEN_CACHE.clear()
            _TOKEN_CACHE[token] = (found, now + TOKEN_CACHE_SECONDS)
        return found

    def remembered_channel_id(self, token: str) -> uuid.UUID | None:
        """channel_id_by_token's answer when this process remembers it: no transaction at all."""
        hit = _TOKEN_CACHE.get(token)
        return hit[0] if hit is not None and hit[1] > time.monotonic() else None

    def forget_token(self, token: str) -> None:
        _TOKEN_CACHE.pop(token, None)

    async def save_channel(
        self,
        session: AsyncSession,
        *,
        tenant: Tenant,
        data: ChannelIn,
        box: SecretBox,
        by: uuid.UUID | None,
        audit: Auditor | None = None,
        channel: MpesaChannel | None = None,
        name: str | None = None,
        action: str = "channel.credentials_changed",
    ) -> MpesaChannel:
        """Replace `channel`'s credentials (default: the primary channel, created when the business has
        none; `name` names a new channel, "Main" by default). New credentials are unverified until their
        KES 1 push succeeds; the callback token is kept so pushes in flight still find their way back.
        Replacing the primary channel's sends the business back to onboarding until then; another
        channel's only stops that channel. `audit`: the use case's writer of the
        `action` row, `channel.credentials_changed` by default (a plain row without)."""
        sim = data.environment is Environment.simulator
        short_code = data.business_short_code or SANDBOX_SHORT_CODE
        till = data.till_number
        if data.kind is ChannelKind.till and sim and not till:
            till = short_code
        key = data.consumer_key.get_secret_value() if data.consumer_key else "simulator-key"
        secret = data.consumer_secret.get_secret_value() if data.consumer_secret else "simulator-secret"
        passkey = data.passkey.get_secret_value() if data.passkey else SANDBOX_PASSKEY

        if channel is None:
            channel = await self.get_channel(session, tenant.id)
        if channel is None:
            # Hex, because Daraja refuses callback URLs containing words like "exe" or "sql" (refs §11.7)
            # and a base64 token would contain one about once in 250 channels.
            channel = MpesaChannel(
                tenant_id=tenant.id,
                callback_token=secrets.token_hex(24),
                name=name or PRIMARY_CHANNEL_NAME,
                is_primary=True,
            )
            session.add(channel)
        channel.environment = data.environment
        channel.kind = data.kind
        channel.business_short_code = short_code
        channel.till_number = till
        channel.consumer_key_enc = box.encrypt(key)
        channel.consumer_secret_enc = box.encrypt(secret)
        channel.passkey_enc = box.encrypt(passkey)
        channel.verified_at = None
        channel.verification_error = None
        channel.verification_payment_id = None
        session.add(channel)  # a new one made by the caller (core.tenants.channels.add)
        if channel.is_primary and tenant.status is TenantStatus.active:
            tenant.status = TenantStatus.onboarding
        await session.flush()
        write = audit or recorder(session, tenant_id=tenant.id, user_id=by)
        await write(
            action,
            target=str(channel.id),
            channel=channel.name,
            environment=data.environment.value,
            kind=data.kind.value,
            short_code=short_code,
        )
        return channel

    def credentials(
        self, channel: MpesaChannel, *, box: SecretBox, settings: Settings, mode: Mode | None = None
    ) -> DarajaCredentials:
        """The channel's Daraja app at its environment's base URL. The credentials carry a mode and the
        production URL, so the Daraja client itself refuses a test request bound for production or a
        live one bound anywhere else (core.daraja.client, defence in depth).

        `mode`: acting for a payment, the payment's own (what it was recorded as). The channel is read
        as it is now, and the owner may have switched it between test and live since: a test payment's
        push or status query then never reaches production, nor a live one's the sandbox (the client
        raises DarajaModeError). None: the channel's mode (the channel's own checks and new pushes)."""
        base = {
            Environment.simulator: settings.simulator_url,
            Environment.sandbox: settings.DARAJA_SANDBOX_URL,
            Environment.production: settings.DARAJA_PRODUCTION_URL,
        }[channel.environment]
        paybill = channel.kind is ChannelKind.paybill
        return DarajaCredentials(
            base_url=base,
            mode=(mode or channel.mode).value,
            production_url=settings.DARAJA_PRODUCTION_URL,
            consumer_key=box.decrypt(channel.consumer_key_enc),
            consumer_secret=box.decrypt(channel.consumer_secret_enc),  # type: ignore[arg-type]
            passkey=box.decrypt(channel.passkey_enc),  # type: ignore[arg-type]
            business_short_code=channel.business_short_code,
            party_b=channel.business_short_code if paybill else (channel.till_number or ""),
            transaction_type="CustomerPayBillOnline" if paybill else "CustomerBuyGoodsOnline",
        )

    def callback_url(self, channel: MpesaChannel, *, settings: Settings) -> str:
        return f"{settings.base_url}/callbacks/daraja/{channel.callback_token}"

    def channel_out(self, channel: MpesaChannel, *, box: SecretBox, settings: Settings) -> ChannelOut:
        return ChannelOut(
            id=channel.id,
            name=channel.name,
            primary=channel.is_primary,
            mode=channel.mode,
            environment=channel.environment,
            kind=channel.kind,
            business_short_code=channel.business_short_code,
            till_number=channel.till_number,
            consumer_key=mask_secret(box.decrypt(channel.consumer_key_enc)),
            consumer_secret=mask_secret(box.decrypt(channel.consumer_secret_enc)),
            passkey=mask_secret(box.decrypt(channel.passkey_enc)),
            callback_url=self.callback_url(channel, settings=settings),
            verified=channel.verified_at is not None,
            verified_at=channel.verified_at,
            verification_error=channel.verification_error,
            verification_payment_id=channel.verification_payment_id,
        )

    async def mark_verified(self, session: AsyncSession, *, channel: MpesaChannel) -> None:
        channel.verified_at = utcnow()
        channel.verification_error = None
        tenant = await self.get(session, channel.tenant_id)
        if channel.is_primary and tenant.status is TenantStatus.onboarding:
            tenant.status = TenantStatus.active
            tenant.status_reason = None
        await record(session, action="channel.verified", tenant_id=tenant.id, target=str(channel.id))

    async def mark_verification_failed(
        self, session: AsyncSession, *, channel: MpesaChannel, reason: str
    ) -> None:
        channel.verification_error = reason
        await record(
            session,
            action="channel.verification_failed",
            tenant_id=channel.tenant_id,
            target=str(channel.id),
            detail={"reason": reason},
        )

    async def toggle_payment_alerts(
        self,
        session: AsyncSession,
        *,
        tenant_id: uuid.UUID,
        by: uuid.UUID | None,
        audit: Auditor | None = None,
    ) -> bool:
        """Flip whether the owner's chat hears about API/USSD payments (audited); returns the new value."""
        tenant = await self.get(session, tenant_id)
        tenant.notify_owner_on_payments = not tenant.notify_owner_on_payments
        write = audit or recorder(session, tenant_id=tenant_id, user_id=by)
        await write("settings.payment_alerts", notify_owner_on_payments=tenant.notify_owner_on_payments)
        return tenant.notify_owner_on_payments

    async def rotate_secrets(
        self, session: AsyncSession, *, box: SecretBox, batch: int = ROTATE_BATCH
    ) -> dict[str, int]:
        """Re-encrypt every encrypted column of every model (`core.db.encrypted_columns`, found from
        the metadata, not listed here) under the first ENCRYPTION_KEYS key, so older keys can then be
        removed. Returns how many values of each kind were rewritten, in table order:
        {"channel secret": 3, "router password": 2}.

        Each table is read and written in batches of `batch` rows by primary key, all in the caller's
        transaction: a token no key decrypts stops it with the row named and nothing rewritten.
        Running it again is harmless (a value already under the first key is re-encrypted under it)."""
        counts: dict[str, int] = {}
        by_table: dict[Table, list[Column[Any]]] = {}
        for column in encrypted_columns():
            counts.setdefault(column.info[ENCRYPTED], 0)
            by_table.setdefault(column.table, []).append(column)
        for table, columns in by_table.items():
            pks = list(table.primary_key.columns)
            assert len(pks) == 1, f"{table.name}: rotation pages by a single-column primary key"
            pk = pks[0]
            last: Any = None
            while True:
                page = select(pk, *columns).order_by(pk).limit(batch)
                if last is not None:
                    page = page.where(pk > last)
                rows = (await session.execute(page)).all()
                for row_id, *tokens in rows:
                    values: dict[str, str] = {}
                    for column, token in zip(columns, tokens, strict=True):
                        if token is None:
                            continue
                        try:
                            values[column.key] = box.rotate(token)
                        except RuntimeError as exc:
                            raise RuntimeError(f"{table.name}.{column.name} of row {row_id}: {exc}") from None
                        counts[column.info[ENCRYPTED]] += 1
                    if values:
                        await session.execute(update(table).where(pk == row_id).values(**values))
                if len(rows) < batch:
                    break
                last = rows[-1][0]
        return counts

    def ensure_can_collect(self, tenant: Tenant, channel: MpesaChannel | None) -> MpesaChannel:
        if tenant.status is TenantStatus.suspended:
            reason = f": {tenant.status_reason}" if tenant.status_reason else ""
            raise TenantNotActive(f"This business is suspended{reason}. Contact lipapush support.")
        if channel is None:
            raise ChannelNotConfigured(
                "Set up your M-Pesa Till or Paybill first (POST /api/settings, or Settings in the bot)."
            )
        if channel.verified_at is None:
            why = f" The last test failed: {channel.verification_error}" if channel.verification_error else ""
            if not channel.is_primary:
                raise ChannelNotVerified(
                    f"The M-Pesa channel “{channel.name}” is not verified yet: approve the KES 1 test "
                    "payment sent to the owner's phone, or resend it (POST /api/channels/"
                    f"{channel.id}/verify, or Settings → Channels).{why}"
                )
            raise ChannelNotVerified(
                "Your M-Pesa channel is not verified yet: approve the KES 1 test payment sent to the "
                f"owner's phone, or save the settings again to resend it.{why}"
            )
        if tenant.status is not TenantStatus.active:
            raise TenantNotActive("This business is not active yet: finish onboarding first.")
        return channel


tenants = TenantService()
