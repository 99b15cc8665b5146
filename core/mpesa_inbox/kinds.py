from __future__ import annotations

from enum import StrEnum


class CallbackKind(StrEnum):
    """Which answer a callback is, by the URL Daraja was given for it:
    /callbacks/daraja/{channel token}/{kind} (an STK callback's URL has no kind)."""

    stk = "stk"
    b2c_result = "b2c-result"
    b2c_timeout = "b2c-timeout"
    status_result = "status-result"
    status_timeout = "status-timeout"
    balance_result = "balance-result"
    balance_timeout = "balance-timeout"
    reversal_result = "reversal-result"
    reversal_timeout = "reversal-timeout"
    c2b_confirmation = "c2b-confirmation"

    @property
    def is_timeout(self) -> bool:
        return self.value.endswith("-timeout")


# The (ResultURL, QueueTimeOutURL) pair of each request that is answered later.
RESULT_KINDS = {
    "b2c": (CallbackKind.b2c_result, CallbackKind.b2c_timeout),
    "status": (CallbackKind.status_result, CallbackKind.status_timeout),
    "balance": (CallbackKind.balance_result, CallbackKind.balance_timeout),
    "reversal": (CallbackKind.reversal_result, CallbackKind.reversal_timeout),
}
