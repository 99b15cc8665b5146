"""Local Telegram Bot API stand-in: ``create_app`` builds a mountable app, ``run`` serves one alone."""

from sim.telegram.app import TelegramSimulator, create_app, run
from sim.telegram.client import SimControlError, SimMessage, SimUser, TelegramSimClient

__all__ = [
    "SimControlError",
    "SimMessage",
    "SimUser",
    "TelegramSimClient",
    "TelegramSimulator",
    "create_app",
    "run",
]
