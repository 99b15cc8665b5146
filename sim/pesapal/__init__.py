"""Local Pesapal API 3.0 stand-in; ``create_app`` builds a mountable FastAPI app, ``run`` serves one alone."""

from sim.pesapal.app import PesapalSimulator, ack_problem, create_app, run
from sim.pesapal.wire import STATUS_DESCRIPTIONS, PesapalError

__all__ = [
    "STATUS_DESCRIPTIONS",
    "PesapalError",
    "PesapalSimulator",
    "ack_problem",
    "create_app",
    "run",
]
