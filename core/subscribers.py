"""Every domain that reacts to another's events, in the order they run for one event.

The order is the order of effects a payment's success had when `payments` called each domain by
name: the customer book, the money, the merchant's message, the voucher, the channel's
verification; then the merchant's webhooks, which describe them.
Add a module here when its domain subscribes to anything (core/events explains when this is loaded).
A list of names rather than import lines, so an import sorter can never reorder the effects.
"""

from __future__ import annotations

import importlib

SUBSCRIBING_MODULES = (
    "core.customers.subscribers",
    "core.customers.reversal_subscribers",
    "core.billing.subscribers",
    "core.billing.reversal_subscribers",
    "core.plans.subscribers",  # after the wallet is credited: a plan paid by M-Pesa is paid from it
    "core.notify.subscribers",
    "core.notify.reversal_subscribers",
    "core.hotspot.subscribers",
    "core.tenants.subscribers",
    "core.payout_batches.subscribers",
    # Last: the events it sends describe what the others did (a voucher, a verified channel).
    "core.webhooks.subscribers",
)

for _name in SUBSCRIBING_MODULES:
    importlib.import_module(_name)
