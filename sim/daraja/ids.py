"""Identifier generators shaped like the ones Daraja hands out (refs §2.4).

Realistic shapes matter because client code parses and stores these values: a stand-in that returns
``"abc"`` would let a too-short column or a too-strict regex slip through to production.
"""

from __future__ import annotations

import secrets
import string
from datetime import date, datetime
from itertools import count
from zoneinfo import ZoneInfo

EAT = ZoneInfo("Africa/Nairobi")

_UPPER_ALNUM = string.ascii_uppercase + string.digits
_ALNUM = string.ascii_letters + string.digits
_DAY_CHARS = "123456789ABCDEFGHIJKLMNOPQRSTUV"


def now_eat() -> datetime:
    return datetime.now(EAT)


def daraja_timestamp(moment: datetime) -> str:
    return moment.astimezone(EAT).strftime("%Y%m%d%H%M%S")


def mpesa_receipt_prefix(day: date) -> str:
    """The three date characters opening an M-Pesa receipt: year (A=2006), month (A=Jan), day (1-9, A=10)."""
    year_char = string.ascii_uppercase[(day.year - 2006) % 26]
    month_char = string.ascii_uppercase[day.month - 1]
    return year_char + month_char + _DAY_CHARS[day.day - 1]


class IdFactory:
    """Per-app source of ids, so two simulator instances never share counters or uniqueness sets."""

    def __init__(self) -> None:
        # Real ids end in a 6-7 digit counter; starting at a random point keeps ids from different runs apart.
        self._counter = count(1_000_000 + secrets.randbelow(8_000_000))
        self._receipts: set[str] = set()

    def request_id(self) -> str:
        """The new-style MerchantRequestID / error requestId: hex4-hex4-hex4-hex12 + a counter."""
        hx = secrets.token_hex(12)
        return f"{hx[0:4]}-{hx[4:8]}-{hx[8:12]}-{hx[12:24]}{next(self._counter)}"

    def access_token(self) -> str:
        return "".join(secrets.choice(_ALNUM) for _ in range(28))

    def checkout_request_id(self, moment: datetime, msisdn: str) -> str:
        local = moment.astimezone(EAT)
        millis = local.microsecond // 1000
        return f"ws_CO_{local.strftime('%d%m%Y%H%M%S')}{millis:03d}{msisdn[-9:]}"

    def conversation_id(self, moment: datetime) -> str:
        """``AG_`` + the EAT date + ``_`` + 20 lowercase hex characters, as in every money-out ack."""
        return f"AG_{moment.astimezone(EAT).strftime('%Y%m%d')}_{secrets.token_hex(10)}"

    def receipt(self, day: date) -> str:
        prefix = mpesa_receipt_prefix(day)
        while True:
            candidate = prefix + "".join(secrets.choice(_UPPER_ALNUM) for _ in range(7))
            if candidate not in self._receipts:
                self._receipts.add(candidate)
                return candidate


def empty_transaction_id(day: date) -> str:
    """The TransactionID of a result that moved no money (a failure, a balance or status query): the
    receipt's three date characters and seven zeros, e.g. ``NLJ0000000`` (refs §2.4)."""
    return mpesa_receipt_prefix(day) + "0000000"


def result_timestamp(moment: datetime) -> str:
    """``DD.MM.YYYY HH:mm:ss`` in EAT: the B2C result's TransactionCompletedDateTime format (refs §7)."""
    return moment.astimezone(EAT).strftime("%d.%m.%Y %H:%M:%S")
