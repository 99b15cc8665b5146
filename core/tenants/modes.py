"""Test and live: which channel a key of each mode may reach.

Stripe's model (docs: stripe.com/docs/keys): every key and every object is in test or live mode, and the
two never mix. Here a business holds one or more channels, an app uses one and its mode is that
channel's (core.apps.service): a test key reaches only a simulator or sandbox channel, a live key only a
*verified* production channel. The rule
lives here once; key creation (core.auth.service) and the push (core.payments.push) each word its
refusal for what the caller was doing, and the Daraja client checks the host again (core.daraja.client).
"""

from __future__ import annotations

from typing import Literal

from core.errors import LiveModeNotReady, ModeMismatch
from core.tenants.models import Mode, MpesaChannel

# What a key of one mode may reach (see mode_problem).
ModeProblem = Literal["live_on_test_channel", "live_unverified", "test_on_production"]
SANDBOX_FOR_TESTS = (
    "To test without real money, add a sandbox or simulator channel (POST /api/channels, or Settings → "
    "Channels) and an app on it (POST /api/apps with its channel_id): that app's keys are test keys."
)


def mode_problem(channel: MpesaChannel | None, mode: Mode) -> ModeProblem | None:
    """The one rule of modes: a test key reaches only a simulator or sandbox channel, a live key
    only a *verified* production channel. An app uses one channel and its mode is that channel's
    (core.apps.service); None when a key of `mode` may push through `channel`. A test key on an
    app without a channel yet is fine here (the push then says to set one up)."""
    if mode is Mode.test:
        return "test_on_production" if channel is not None and channel.mode is Mode.live else None
    if channel is None or channel.mode is Mode.test:
        return "live_on_test_channel"
    return None if channel.verified_at is not None else "live_unverified"


def ensure_key_mode(channel: MpesaChannel | None, mode: Mode) -> None:
    """Making a key of `mode` for an app on `channel`: refused with what to do instead."""
    problem = mode_problem(channel, mode)
    if problem == "test_on_production":
        raise ModeMismatch(
            "Test keys never reach production, and this app's M-Pesa channel is a production one: its "
            f"keys are live keys. Create a live key (mode live) instead. {SANDBOX_FOR_TESTS}"
        )
    if problem == "live_on_test_channel":
        where = f"a {channel.environment.value} one" if channel is not None else "not set up yet"
        raise LiveModeNotReady(
            "Live keys push only through a verified production M-Pesa channel, and this app's channel "
            f"is {where}, so its keys are test keys: create a test key (mode test) to try payments now. "
            "To go live, add your production channel (environment production: POST /api/channels, or "
            "Settings → Channels), approve its KES 1 verification payment, and create an app on it: its "
            "keys are live keys."
        )
    if problem == "live_unverified":
        raise LiveModeNotReady(
            "Live keys are refused until the production M-Pesa channel is verified: approve the KES 1 "
            "verification payment sent to the owner's phone (or save the channel settings again to "
            "resend it), then create the live key."
        )


def ensure_push_mode(channel: MpesaChannel | None, mode: Mode) -> None:
    """A push with a key of `mode` through `channel`: refused before anything is written."""
    problem = mode_problem(channel, mode)
    if problem == "test_on_production":
        raise ModeMismatch(
            "This is a test key (lp_test_…) and its app's M-Pesa channel is a production one: test keys "
            "never reach real money. Use a live key (lp_live_…) for real payments, or an app on a sandbox "
            "or simulator channel for tests."
        )
    if problem == "live_on_test_channel":
        where = f"a {channel.environment.value} one" if channel is not None else "not set up yet"
        raise LiveModeNotReady(
            f"This is a live key (lp_live_…) and its app's M-Pesa channel is {where}: live keys push "
            "only through a verified production channel. Use a test key (lp_test_…) to try payments, "
            "or add your production channel (POST /api/channels, environment production), approve its KES "
            "1 verification payment and use a key of an app on it."
        )
    if problem == "live_unverified":
        raise LiveModeNotReady(
            "This is a live key (lp_live_…) and its app's production M-Pesa channel is not verified yet: "
            "approve the KES 1 verification payment sent to the owner's phone (or save the channel "
            "settings again to resend it), then try again."
        )
