"""The refusals of money out, beside core/errors.py's table: each says what was wrong, with the numbers,
and what to do. Nothing is written when one is raised."""

from __future__ import annotations

from core.errors import LipapushError

# Where a business's limits are changed: the platform operator's command (core.payouts.use_cases_admin).
LIMITS_HOW = "lipapush support can change it (`lipapush payout limits --tenant …`)"


class PayoutOverLimit(LipapushError):
    """More than the business may send in one payout (`Tenant.payout_max_kes`, else PAYOUT_MAX_KES)."""

    code = "payout_over_limit"
    status = 422


class DailyPayoutLimitReached(LipapushError):
    """Today's payouts (Nairobi day, pending and paid) and this one would pass the daily limit. A 429
    with Retry-After: the seconds until midnight in Nairobi, when the day's total starts again."""

    code = "payout_daily_limit"
    status = 429


class InitiatorNotVerified(LipapushError):
    """The channel's Daraja initiator is missing, or no balance check has proven it yet."""

    code = "initiator_not_verified"
    status = 409


class NoPayoutChannel(LipapushError):
    code = "no_payout_channel"
    status = 409
