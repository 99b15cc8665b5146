"""What an agent can read to learn the rules: the test-mode magic numbers and the error table."""

from __future__ import annotations

from mcp.server import MCPServer

from core.errors import LipapushError
from web.guides import guides_dir

MAGIC_URI = "lipapush://guides/test-mode-magic-numbers"
ERRORS_URI = "lipapush://errors"


# What each code means to an agent and what to do next. Codes of the web panel's own pages (a CSRF
# token, a sign-in, a password-reset link, an email already registered) never reach a tool and are left
# out; a code missing here still shows, with its class's first sentence.
MEANINGS: dict[str, str] = {
    "invalid_input": "An argument is wrong (the message names it and why): fix it and call again.",
    "not_found": "No such object in this business (or it is another's): check the id, or list to find it.",
    "permission_denied": "This key may not do this (the message names the scope): ask for a key with it.",
    "authentication_failed": "The key is not valid, revoked or expired: ask your person for a working key.",
    "conflict": "The request clashes with the object's state (the message says how): do not repeat it as is.",
    "idempotency_key_reused": "This idempotency_key was used for a different request: use a new key.",
    "mode_mismatch": "A test key reached for live money, or a live key for the simulator: use the other key.",
    "live_mode_not_ready": "The business's live channel is not verified yet: use a test key meanwhile.",
    "channel_not_configured": "The business has no M-Pesa channel yet: its owner must add one in the panel.",
    "channel_not_verified": "The M-Pesa channel is not verified yet: the owner must finish its test.",
    "tenant_not_active": "The business is suspended or not yet active: nothing can be collected for now.",
    "billing_hold": "The business owes lipapush: its owner must top up the wallet or pay the invoice.",
    "insufficient_wallet_balance": "The wallet cannot cover the commission: the owner must top it up.",
    "too_many_requests": "A limit was reached (the message names it): wait the seconds it says, then retry.",
    "too_many_tries": "Too many wrong tries: start the action again from its first step.",
    "busy": "The database was busy: retry with the same idempotency_key.",
    "daraja_rejected": "M-Pesa refused the request (the message says why): fix that before trying again.",
    "daraja_unavailable": "M-Pesa did not answer: the message says whether the customer may still be "
    "prompted; never re-send before checking the payment.",
    "service_unavailable": "A service is down for a moment: retry later with the same idempotency_key.",
    "no_payout_channel": "The business has no payout channel (B2C): its owner must add one first.",
    "initiator_not_verified": "The payout channel's M-Pesa initiator is not set or not proven yet.",
    "payout_over_limit": "Over the business's per-payout limit: send less, or split the amount.",
    "payout_daily_limit": "Over today's payout limit (Nairobi days): send at most what is left, or wait.",
    "confirmation_used": "The confirmation token was already used: look up what it made instead.",
    "confirmation_expired": "The confirmation token expired: call the tool again without it for a new one.",
    "internal_error": "Something failed on lipapush's side: try again; the call is logged.",
}
PANEL_ONLY = frozenset({"csrf_failed", "login_required", "reset_link_invalid", "email_taken", "error"})


def _subclasses(cls: type[LipapushError]) -> list[type[LipapushError]]:
    found: list[type[LipapushError]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


def error_table() -> str:
    """Every error code a tool can answer with (the REST API's, same words), its HTTP status, what it
    means and what to do next."""
    rows: dict[str, tuple[int, str]] = {"internal_error": (500, MEANINGS["internal_error"])}
    for cls in _subclasses(LipapushError):
        if cls.code in PANEL_ONLY or cls.code in rows:
            continue
        doc = " ".join((cls.__doc__ or "").split()).split(". ")[0].rstrip(".")
        rows[cls.code] = (cls.status, MEANINGS.get(cls.code, doc))
    lines = [
        "# lipapush errors",
        "",
        "A tool that fails answers with an error result whose text is the message and `(error: <code>)`.",
        'The message says what was wrong and what to do. Codes are the REST API\'s (`{"error": code}`).',
        "Never call request_payment again with a new idempotency_key after an error: if the first call",
        "reached M-Pesa, that prompts the customer twice. Retry with the same key.",
        "",
        "| code | HTTP status | meaning and what to do |",
        "|---|---|---|",
    ]
    for code, (status, meaning) in sorted(rows.items()):
        lines.append(f"| `{code}` | {status} | {meaning} |")
    return "\n".join(lines) + "\n"


def magic_numbers() -> str:
    directory = guides_dir()
    page = directory / "test-mode-magic-numbers.md" if directory else None
    if page is None or not page.is_file():
        return (
            "The test-mode guide is not installed with this server. With a test key (lp_test_), phone "
            "numbers ending 0111 succeed, 1032 are cancelled, 2001 fail; the server's page "
            "/docs/guides/test-mode-magic-numbers has them all.\n"
        )
    return page.read_text(encoding="utf-8")


def register(server: MCPServer) -> None:
    server.resource(
        MAGIC_URI,
        name="test-mode-magic-numbers",
        title="Test mode: phone numbers that end each way",
        description="With a test key, the simulator answers by the phone number's last digits: which end in "
        "success, a decline, a timeout or an error.",
        mime_type="text/markdown",
    )(magic_numbers)
    server.resource(
        ERRORS_URI,
        name="errors",
        title="Error codes and what to do",
        description="Every error code a tool can answer with, its HTTP status and meaning, and when to "
        "retry.",
        mime_type="text/markdown",
    )(error_table)
