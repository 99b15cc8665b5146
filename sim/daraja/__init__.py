"""Local Daraja stand-in; ``create_app`` builds a mountable FastAPI app, ``run`` serves one alone."""

from sim.daraja.app import OUTCOMES, DarajaSimulator, Outcome, create_app, run
from sim.daraja.ids import mpesa_receipt_prefix
from sim.daraja.validation import SANDBOX_PASSKEY, expected_password

__all__ = [
    "OUTCOMES",
    "SANDBOX_PASSKEY",
    "DarajaSimulator",
    "Outcome",
    "create_app",
    "expected_password",
    "mpesa_receipt_prefix",
    "run",
]
