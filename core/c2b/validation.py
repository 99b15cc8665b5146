"""Answering M-Pesa's C2B validation: "may this payment go through?", asked before the payment completes
when Safaricom enabled external validation for the short code.

M-Pesa waits about 8 s for the answer, then does what the registration's ResponseType says (Completed
by default), so the answer is given in the request: no job, no Daraja call, one short transaction that
also records the decision (`c2b_decisions`), so the merchant can see why a payment was refused.

Decisions:
- The channel's validation off (the default): accept. M-Pesa asks only where Safaricom enabled it; if it
  asks anyway, we let the payment through, as it would without us.
- On: refuse what cannot be a payment to this channel, with the code M-Pesa documents: another short
  code (C2B00015 Invalid Shortcode), an amount that is not whole shillings from 1 to 250 000 (C2B00013
  Invalid Amount), a body we cannot read (C2B00016 Other Error); then the channel's accounts rule:
  `known_references` accepts only an account number (BillRefNumber) the business listed for the
  channel, compared ignoring case and spaces; anything else is C2B00012 Invalid Account Number. No rule:
  accept.
- A refusal ends the payment at M-Pesa: the customer is told and no money moves. An error on our side
  answers 500 and M-Pesa applies the ResponseType.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.c2b import service as c2b
from core.c2b.models import AccountsRule, C2BDecision, DecisionStage
from core.daraja.c2b import (
    C2BPayment,
    C2BRejection,
    parse_c2b_payment,
    validation_accepted,
    validation_rejected,
)
from core.daraja.results import text_value
from core.db import Scope
from core.money import MPESA_MAX_AMOUNT
from core.runtime import unit_of_work
from core.tenants.models import MpesaChannel
from core.tenants.service import tenants
from core.text import has_unstorable

MAX_BODY = 64 * 1024
VALIDATION = Scope.platform("Daraja C2B validation")


@dataclass(frozen=True)
class Decision:
    rejection: C2BRejection | None  # None: accepted
    reason: str

    @property
    def reply(self) -> dict[str, str]:
        return validation_accepted() if self.rejection is None else validation_rejected(self.rejection)


async def answer(*, token: str, body: bytes) -> dict[str, str] | None:
    """The reply to one validation request at the channel whose callback token is `token`, recorded;
    None when no channel has that token (the route answers 404)."""
    # Which business a request is for is what its URL token says: found across tenants, as callbacks are.
    async with unit_of_work(scope=VALIDATION) as session:
        channel = await tenants.get_channel_by_token(session, token)
        if channel is None:
            return None
        data = _read(body)
        paid: C2BPayment | None = None
        problem = None
        try:
            paid = parse_c2b_payment(data)
        except ValueError as exc:
            problem = str(exc)
        decision = await decide(session, channel, paid, problem)
        session.add(_record(channel, decision, paid, data))
        return decision.reply


def _read(body: bytes) -> Any:
    data: Any = None
    with contextlib.suppress(ValueError):
        data = json.loads(body[:MAX_BODY].decode("utf-8", errors="replace"))
    # Text no database can store is not recorded as it came (and never reaches a query).
    return None if has_unstorable(data) else data


async def decide(
    session: AsyncSession, channel: MpesaChannel, paid: C2BPayment | None, problem: str | None
) -> Decision:
    if not channel.c2b_validation:
        return Decision(None, "Accepted: validation is off for this channel, so every payment goes through.")
    if paid is None:
        return Decision(
            C2BRejection.other, f"Refused: the request could not be read ({problem or 'not JSON'})."
        )
    codes = {channel.business_short_code, channel.till_number} - {None}
    if paid.business_short_code not in codes:
        return Decision(
            C2BRejection.invalid_short_code,
            f"Refused: it is for short code {paid.business_short_code[:20]}, not this channel's.",
        )
    if paid.amount_cents % 100 or not 100 <= paid.amount_cents <= MPESA_MAX_AMOUNT * 100:
        return Decision(
            C2BRejection.invalid_amount,
            f"Refused: KES {paid.amount_cents / 100:,.2f} is not a whole amount from 1 to "
            f"{MPESA_MAX_AMOUNT:,}.",
        )
    if channel.c2b_accounts_rule == AccountsRule.known_references:
        ref = paid.bill_ref_number
        if not await c2b.is_known_account(session, channel_id=channel.id, reference=ref):
            shown = f"account number {ref[:40]!r}" if ref else "no account number"
            return Decision(
                C2BRejection.invalid_account,
                f"Refused: {shown} is not one of this channel's account numbers (rule known_references).",
            )
        return Decision(None, f"Accepted: account number {ref!r} is listed for this channel.")
    return Decision(None, "Accepted: validation is on, with no accounts rule.")


def _record(channel: MpesaChannel, decision: Decision, paid: C2BPayment | None, data: Any) -> C2BDecision:
    raw = data if isinstance(data, dict) else {}
    return C2BDecision(
        tenant_id=channel.tenant_id,
        channel_id=channel.id,
        stage=DecisionStage.validation,
        accepted=decision.rejection is None,
        result_code=decision.reply["ResultCode"],
        reason=decision.reason,
        trans_id=(paid.trans_id if paid else text_value(raw.get("TransID")) or "")[:64] or None,
        amount_cents=paid.amount_cents if paid else None,
        bill_ref_number=((paid.bill_ref_number if paid else text_value(raw.get("BillRefNumber"))) or "")[:100]
        or None,
        msisdn=((paid.msisdn if paid else text_value(raw.get("MSISDN"))) or "")[:64] or None,
    )
