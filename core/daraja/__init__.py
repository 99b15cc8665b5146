"""Daraja (Safaricom M-Pesa) client: OAuth tokens, STK push, STK query and STK callback parsing; and
for money out, B2C, C2B URL registration, transaction status, account balance and reversals
(core.daraja.money_out), their asynchronous results (core.daraja.results), C2B payloads
(core.daraja.c2b) and the SecurityCredential (core.daraja.security_credential).

A leaf package: it knows the wire format and nothing of our database, settings or front ends.
"""

from core.daraja.callbacks import parse_stk_callback
from core.daraja.client import DarajaClient, build_password, daraja_timestamp, token_cache_key
from core.daraja.errors import (
    DarajaAuthError,
    DarajaBusinessError,
    DarajaError,
    DarajaModeError,
    DarajaThrottleError,
    DarajaTransientError,
    DarajaValidationError,
)
from core.daraja.result_codes import PaymentOutcome, classify
from core.daraja.schemas import (
    DarajaCredentials,
    StkCallback,
    StkPushAccepted,
    StkPushRequest,
    StkQueryResult,
)
from core.daraja.tokens import MemoryTokenStore, RedisTokenStore, TokenStore

__all__ = [
    "DarajaAuthError",
    "DarajaBusinessError",
    "DarajaClient",
    "DarajaCredentials",
    "DarajaError",
    "DarajaModeError",
    "DarajaThrottleError",
    "DarajaTransientError",
    "DarajaValidationError",
    "MemoryTokenStore",
    "PaymentOutcome",
    "RedisTokenStore",
    "StkCallback",
    "StkPushAccepted",
    "StkPushRequest",
    "StkQueryResult",
    "TokenStore",
    "build_password",
    "classify",
    "daraja_timestamp",
    "parse_stk_callback",
    "token_cache_key",
]
