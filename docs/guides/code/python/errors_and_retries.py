"""Errors, retries and idempotency: what lipapush answers when something is wrong, and how to send a
payment again without ever prompting the customer twice.

    pip install httpx
    LIPAPUSH_URL=http://127.0.0.1:8000 LIPAPUSH_KEY=lp_test_... CUSTOMER_PHONE=0722000111 \
        python errors_and_retries.py

Prints one JSON line per step: invalid_amount, first, replay, conflict.
"""

import json
import os
import sys
import time
import uuid

import httpx

LIPAPUSH_URL = os.environ.get("LIPAPUSH_URL", "http://127.0.0.1:8000")
LIPAPUSH_KEY = os.environ["LIPAPUSH_KEY"]
CUSTOMER_PHONE = os.environ.get("CUSTOMER_PHONE", "0722000111")

# region retry
# Worth another try, with the same Idempotency-Key: too many requests (429), a failure on our side
# (500) or M-Pesa busy or slow (503). Any other 4xx needs a change to the request first; a 502 means
# M-Pesa refused the payment, which is recorded as failed: the same key would only return it again.
RETRYABLE = {429, 500, 503}


def create_payment(api: httpx.Client, *, order_id: str, phone: str, amount: int) -> httpx.Response:
    """POST /api/stk-push, sent again after a network error, 429 or 5xx. Every attempt carries the
    order's Idempotency-Key, so however many reach lipapush, the customer gets one prompt."""
    attempts = 4
    for attempt in range(1, attempts + 1):
        try:
            response = api.post(
                "/api/stk-push",
                json={"phone": phone, "amount": amount},
                headers={"Idempotency-Key": f"order-{order_id}"},
            )
        except httpx.TransportError:
            # No answer: the payment may or may not exist. Sending it again with the same key is safe.
            if attempt == attempts:
                raise
            wait = 2**attempt
        else:
            if response.status_code not in RETRYABLE or attempt == attempts:
                return response
            # Retry-After (seconds) comes with every 429 and some 503s: wait at least that long.
            wait = int(response.headers.get("Retry-After", 2**attempt))
        time.sleep(min(wait, 60))
    raise AssertionError("unreachable: the last attempt returns or raises")


# endregion


def show(step: str, response: httpx.Response) -> None:
    print(json.dumps({"step": step, "status": response.status_code, "body": response.json()}))


def main() -> int:
    api = httpx.Client(base_url=LIPAPUSH_URL, headers={"Authorization": f"Bearer {LIPAPUSH_KEY}"}, timeout=30)

    # region invalid
    # A bad request changes nothing and says why: 422, {"error": "invalid_input", "detail": ...,
    # "errors": {"amount": "..."}}. Show `errors` next to the form field; do not retry.
    response = api.post("/api/stk-push", json={"phone": CUSTOMER_PHONE, "amount": 0})
    show("invalid_amount", response)
    # endregion

    # region idempotent
    order_id = uuid.uuid4().hex[:12]
    first = create_payment(api, order_id=order_id, phone=CUSTOMER_PHONE, amount=150)
    show("first", first)
    # The same order again (a double click, a retry after a timeout): the same payment, no new prompt.
    replay = create_payment(api, order_id=order_id, phone=CUSTOMER_PHONE, amount=150)
    show("replay", replay)
    # The same key for a different payment is a bug in the caller: 409 idempotency_key_reused.
    conflict = create_payment(api, order_id=order_id, phone=CUSTOMER_PHONE, amount=200)
    show("conflict", conflict)
    # endregion
    return 0 if first.json()["id"] == replay.json()["id"] else 1


if __name__ == "__main__":
    sys.exit(main())
