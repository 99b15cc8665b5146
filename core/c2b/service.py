"""C2B on a channel: where M-Pesa reports its payments (registration), whether and how we validate
them, the account numbers validation accepts, and the decisions it took. Sessions come from the
caller; nothing here commits (core/c2b/use_cases.py holds who may, the audit and the transaction).

Decisions (docs/c2b.md says them to merchants):
- Registration goes through the channel's own Daraja app, at its environment's URL, in the channel's
  mode: a test channel (simulator, sandbox) can only ever reach the simulator or the sandbox (the
  client's mode guard, core.daraja.client.check_mode). v1 by default: v2 masks the payer's number.
- A B2C (payout) short code collects nothing, so it registers no C2B URLs.
- Production accepts one registration per short code. Its "already registered" answer is shown as
  such (409 `c2b_urls_already_registered`, saying how to remove them), never as a generic failure, and
  the channel is not marked registered: we cannot tell whose URLs Daraja holds.
- Validation is off by default, as on Daraja, where Safaricom enables external validation per short
  code on request; turning it on here only decides how we answer when M-Pesa asks.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from pydantic import SecretStr
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.c2b.models import AccountsRule, C2BAccount, C2BDecision, C2BPaymentFacts
from core.c2b.schemas import C2BSettingsIn, C2BStateOut, account_key
from core.config import Settings
from core.crypto import SecretBox
from core.daraja.app import AppCredentials
from core.daraja.errors import (
    DarajaError,
    DarajaModeError,
    DarajaThrottleError,
    DarajaTransientError,
    DarajaUrlsAlreadyRegisteredError,
)
from core.daraja.money_out import C2BRegisterRequest
from core.db import utcnow
from core.errors import (
    Conflict,
    DarajaRejected,
    DarajaUnavailable,
    InvalidInput,
    LipapushError,
    ModeMismatch,
    NotFound,
)
from core.mpesa_inbox.kinds import CallbackKind
from core.tenants.models import ChannelKind, Environment, Mode, MpesaChannel
from core.upsert import insert_for

# The validation URL's last path segment (web/callbacks_c2b.py); the confirmation's is its inbox kind.
VALIDATION_PATH = "c2b-validation"
# A ceiling no real business reaches (a school's student numbers), so one owner cannot fill the table.
MAX_ACCOUNTS = 100_000
SAFARICOM_SUPPORT = "apisupport@safaricom.co.ke"


class C2BUrlsAlreadyRegistered(Conflict):
    """Daraja (production) already holds C2B URLs for the short code: it accepts one registration."""

    code = "c2b_urls_already_registered"


@dataclass(frozen=True)
class Registration:
    """What one registerurl call sends, built from the channel inside the use case's transaction so
    the call itself runs outside any."""

    channel_id: uuid.UUID
    short_code: str
    environment: Environment
    registered_at: datetime | None  # an earlier registration through lipapush, if any
    creds: AppCredentials
    request: C2BRegisterRequest


def urls(channel: MpesaChannel, *, settings: Settings) -> tuple[str, str]:
    """(ConfirmationURL, ValidationURL) of a channel: its unguessable callback token (Daraja's
    callbacks are unsigned, refs §11.4), then which of the two it is."""
    base = f"{settings.base_url}/callbacks/daraja/{channel.callback_token}"
    return f"{base}/{CallbackKind.c2b_confirmation.value}", f"{base}/{VALIDATION_PATH}"


def _payout_only(channel: MpesaChannel) -> str:
    return (
        f"The channel “{channel.name}” is a B2C (payout) short code: customers cannot pay into it, so it "
        "has no C2B URLs. Register C2B on the paybill or till channel instead."
    )


def ensure_collects(channel: MpesaChannel) -> None:
    if not channel.kind.collects:
        raise Conflict(_payout_only(channel))


def app_credentials(channel: MpesaChannel, *, box: SecretBox, settings: Settings) -> AppCredentials:
    """The channel's Daraja app for the short code it collects into, at its environment's URL and in
    its mode, so the client refuses a test channel's call to production (and a live one's elsewhere)."""
    base = {
        Environment.simulator: settings.simulator_url,
        Environment.sandbox: settings.DARAJA_SANDBOX_URL,
        Environment.production: settings.DARAJA_PRODUCTION_URL,
    }[channel.environment]
    return AppCredentials(
        base_url=base,
        consumer_key=box.decrypt(channel.consumer_key_enc) or "",
        consumer_secret=SecretStr(box.decrypt(channel.consumer_secret_enc) or ""),
        # A till's URLs are registered for its Store/Head Office number, the short code its Daraja app
        # belongs to (core.tenants.models.MpesaChannel.business_short_code).
        short_code=channel.business_short_code,
        mode=channel.mode.value,
        production_url=settings.DARAJA_PRODUCTION_URL,
    )


def plan_registration(
    channel: MpesaChannel,
    *,
    version: str,
    response_type: str,
    key_mode: Mode | None,
    box: SecretBox,
    settings: Settings,
) -> Registration:
    """What to send for this channel, or why nothing may be sent. `key_mode`: an API key's mode; a key
    registers only channels of its own mode (a test key never touches a production short code)."""
    ensure_collects(channel)
    if key_mode is not None and key_mode is not channel.mode:
        raise ModeMismatch(
            f"This is a {key_mode.value} key and the channel “{channel.name}” is a {channel.mode.value} "
            f"({channel.environment.value}) one: a key registers C2B URLs only for channels of its own "
            f"mode. Use a {channel.mode.value} key."
        )
    confirmation, validation = urls(channel, settings=settings)
    return Registration(
        channel_id=channel.id,
        short_code=channel.business_short_code,
        environment=channel.environment,
        registered_at=channel.c2b_registered_at,
        creds=app_credentials(channel, box=box, settings=settings),
        request=C2BRegisterRequest(
            confirmation_url=confirmation,
            validation_url=validation,
            response_type=response_type,  # type: ignore[arg-type]  # checked by C2BRegisterIn
            version=version,  # type: ignore[arg-type]
        ),
    )


def registration_refused(exc: DarajaError, plan: Registration) -> LipapushError:
    """Daraja's refusal in the words a merchant can act on. Nothing is recorded on the channel."""
    if isinstance(exc, DarajaUrlsAlreadyRegisteredError):
        whose = (
            f"lipapush registered them on {plan.registered_at:%d %b %Y}, so payments already reach us"
            if plan.registered_at is not None
            else "they may be another system's, in which case payments go there, not to lipapush"
        )
        return C2BUrlsAlreadyRegistered(
            f"M-Pesa already has C2B URLs for short code {plan.short_code} ({whose}). In production a short "
            "code takes one registration: to change it, delete the URLs under URL management on the Daraja "
            f"portal (or ask {SAFARICOM_SUPPORT}), then register again.",
            short_code=plan.short_code,
        )
    if isinstance(exc, DarajaModeError):
        return ModeMismatch(f"Nothing was sent to M-Pesa: {exc.message}")
    if isinstance(exc, DarajaTransientError | DarajaThrottleError):
        return DarajaUnavailable(
            f"M-Pesa did not answer the C2B registration: {exc.message} The URLs may or may not be "
            "registered: try again (a sandbox short code may register again; in production a second try "
            "answers “already registered” if the first one went through)."
        )
    return DarajaRejected(f"M-Pesa refused the C2B registration: {exc.message}")


def mark_registered(channel: MpesaChannel, *, version: str) -> None:
    channel.c2b_registered_at = utcnow()
    channel.c2b_api_version = version


def change_settings(channel: MpesaChannel, data: C2BSettingsIn) -> dict[str, object]:
    """Apply what `data` names; returns what changed as {field: [before, after]} (for the audit)."""
    ensure_collects(channel)
    rule = channel.c2b_accounts_rule
    if "accounts_rule" in data.model_fields_set:
        rule = data.accounts_rule.value if data.accounts_rule is not None else None
    if rule == AccountsRule.known_references and channel.kind is ChannelKind.till:
        raise InvalidInput(
            "accounts_rule",
            "A till (Buy Goods) payment carries no account number, so known_references would refuse every "
            "payment: use it on a paybill channel.",
        )
    changed: dict[str, object] = {}
    if "validation" in data.model_fields_set and data.validation != channel.c2b_validation:
        changed["validation"] = [channel.c2b_validation, data.validation]
        channel.c2b_validation = bool(data.validation)
    if rule != channel.c2b_accounts_rule:
        changed["accounts_rule"] = [channel.c2b_accounts_rule, rule]
        channel.c2b_accounts_rule = rule
    return changed


async def account_count(session: AsyncSession, channel_id: uuid.UUID) -> int:
    return int(
        await session.scalar(select(func.count(C2BAccount.id)).where(C2BAccount.channel_id == channel_id))
        or 0
    )


async def state(session: AsyncSession, channel: MpesaChannel, *, settings: Settings) -> C2BStateOut:
    confirmation, validation = urls(channel, settings=settings)
    accounts = await account_count(session, channel.id)
    rule = AccountsRule(channel.c2b_accounts_rule) if channel.c2b_accounts_rule else None
    return C2BStateOut(
        channel_id=channel.id,
        channel_name=channel.name,
        kind=channel.kind,
        mode=channel.mode,
        short_code=channel.business_short_code,
        till_number=channel.till_number,
        registered=channel.c2b_registered_at is not None,
        registered_at=channel.c2b_registered_at,
        api_version=channel.c2b_api_version,
        confirmation_url=confirmation,
        validation_url=validation,
        validation=channel.c2b_validation,
        accounts_rule=rule,
        accounts=accounts,
        notes=notes(channel, rule=rule, accounts=accounts),
    )


def notes(channel: MpesaChannel, *, rule: AccountsRule | None, accounts: int) -> list[str]:
    """What the merchant should know about this channel's C2B, in the order it matters."""
    out: list[str] = []
    if not channel.kind.collects:
        return [_payout_only(channel)]
    if channel.c2b_registered_at is None:
        out.append(
            "Not registered yet: register the URLs (POST /api/channels/{id}/c2b/register, or `lipapush c2b "
            "register`) so M-Pesa reports payments made straight to the short code."
        )
    elif channel.c2b_api_version == "v2":
        out.append(
            "Registered through v2: M-Pesa masks the payer's number (2547 ***** 126). Those payments are "
            "recorded and earn commission, but join the customer book only when the visible digits and the "
            "payer's name match exactly one customer already in it. Register through v1 for full numbers."
        )
    if channel.c2b_validation:
        out.append(
            f"Validation is on here, but M-Pesa asks only once Safaricom has enabled external validation "
            f"for short code {channel.business_short_code} (email {SAFARICOM_SUPPORT}; about 24 working "
            "hours). Until then every payment goes through."
        )
        if rule is AccountsRule.known_references and accounts == 0:
            out.append(
                "The known_references rule refuses every payment until you list account numbers "
                "(POST /api/channels/{id}/c2b/accounts, or `lipapush c2b accounts --add`)."
            )
    else:
        out.append(
            "Validation is off (the default): every payment to the short code is accepted."
            + (" The accounts rule applies once validation is on." if rule is not None else "")
        )
    if channel.environment is Environment.production:
        out.append(
            "In production M-Pesa takes one registration per short code: to change the URLs later, delete "
            f"them under URL management on the Daraja portal (or ask {SAFARICOM_SUPPORT}), then register "
            "again."
        )
    return out


async def add_accounts(
    session: AsyncSession, *, channel: MpesaChannel, references: list[str]
) -> tuple[int, int]:
    """List account numbers for the known_references rule; one already listed (ignoring case and
    spaces) is left as it was. Returns (added, total)."""
    ensure_collects(channel)
    fresh: dict[str, str] = {}
    for ref in references:
        fresh.setdefault(account_key(ref), ref)
    before = await account_count(session, channel.id)
    if before + len(fresh) > MAX_ACCOUNTS:
        raise InvalidInput(
            "references",
            f"A channel lists at most {MAX_ACCOUNTS} account numbers; it has {before}. Remove some first.",
        )
    now = utcnow()
    table = C2BAccount.__table__
    stmt = insert_for(session, table).values(
        [
            {
                "tenant_id": channel.tenant_id,
                "channel_id": channel.id,
                "reference": ref,
                "key": key,
                "created_at": now,
            }
            for key, ref in fresh.items()
        ]
    )
    await session.execute(stmt.on_conflict_do_nothing(index_elements=[table.c.channel_id, table.c.key]))
    total = await account_count(session, channel.id)
    return total - before, total


async def remove_account(session: AsyncSession, *, channel: MpesaChannel, reference: str) -> str:
    """Unlist one account number (matched ignoring case and spaces); 404 when it is not listed."""
    row = await session.scalar(
        select(C2BAccount).where(
            C2BAccount.channel_id == channel.id, C2BAccount.key == account_key(reference)
        )
    )
    if row is None:
        raise NotFound(f"{reference!r} is not one of this channel's account numbers.")
    await session.execute(delete(C2BAccount).where(C2BAccount.id == row.id))
    return row.reference


async def list_accounts(session: AsyncSession, *, channel_id: uuid.UUID, limit: int) -> list[C2BAccount]:
    return list(
        await session.scalars(
            select(C2BAccount)
            .where(C2BAccount.channel_id == channel_id)
            .order_by(C2BAccount.key)
            .limit(limit)
        )
    )


async def is_known_account(session: AsyncSession, *, channel_id: uuid.UUID, reference: str | None) -> bool:
    if not reference or not account_key(reference):
        return False
    found = await session.scalar(
        select(C2BAccount.id).where(
            C2BAccount.channel_id == channel_id, C2BAccount.key == account_key(reference)
        )
    )
    return found is not None


async def decisions(
    session: AsyncSession,
    *,
    channel_id: uuid.UUID,
    accepted: bool | None,
    before_id: int | None,
    limit: int,
) -> list[C2BDecision]:
    """Newest first; `before_id` pages back (the last id of the previous page)."""
    stmt = select(C2BDecision).where(C2BDecision.channel_id == channel_id)
    if accepted is not None:
        stmt = stmt.where(C2BDecision.accepted.is_(accepted))
    if before_id is not None:
        stmt = stmt.where(C2BDecision.id < before_id)
    return list(await session.scalars(stmt.order_by(C2BDecision.id.desc()).limit(limit)))


async def facts_of(session: AsyncSession, *, payment_id: uuid.UUID) -> C2BPaymentFacts | None:
    return await session.get(C2BPaymentFacts, payment_id)
