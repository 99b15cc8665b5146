"""The jobs of money out, in one import for the composition root (web/app.py): sending a payout,
the reconciler's sweep and its look at one payout. Importing this registers them all."""

from __future__ import annotations

from core.payouts.reconcile import check_payout, reconcile_payouts
from core.payouts.send import send_payout

__all__ = ["check_payout", "reconcile_payouts", "send_payout"]
