"""The modules that register a handler (core.mpesa_inbox.registry.handles), imported wherever answers
are applied (the job) so every kind has its handler in every process. Names, not imports, as in
core/subscribers.py."""

from __future__ import annotations

import importlib

HANDLER_MODULES = (
    "core.payouts.answers",  # B2C Result / QueueTimeOut
    "core.lookups.answers",  # balance and transaction-status Result / QueueTimeOut
    "core.reversals.answers",  # reversal Result / QueueTimeOut
    "core.c2b.answers",  # C2B confirmations
)


def load() -> None:
    for name in HANDLER_MODULES:
        importlib.import_module(name)
