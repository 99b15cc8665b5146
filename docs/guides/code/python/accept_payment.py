"""Accept a payment: send an M-Pesa prompt (STK push) to a customer's phone, then wait for the outcome.

    pip install httpx
    LIPAPUSH_URL=http://127.0.0.1:8000 LIPAPUSH_KEY=lp_test_... CUSTOMER_PHONE=0722000111 \
        python accept_payment.py

Prints the payment as JSON once it is final. Exit status: 0 paid, 1 not paid (or still pending when
WAIT_SECONDS ran out), 2 the push was refused.
"""

import json
import os
import sys
import time
import uuid

import httpx

LIPAPUSH_URL = os.environ.get("LIPAPUSH_URL", "http://127.0.0.1:8000")
LIPAPUSH_KEY = os.environ["LIPAPUSH_KEY"]  # lp_test_... while you build, lp_live_... in production
CUSTOMER_PHONE = os.environ.get("CUSTOMER_PHONE", "0722000111")
AMOUNT = int(os.environ.get("AMOUNT", "150"))  # whole shillings
WAIT_SECONDS = float(os.environ.get("WAIT_SECONDS", "120"))


def main() -> int:
    # region api
    api = httpx.Client(
        base_url=LIPAPUSH_URL,
        headers={"Authorization": f"Bearer {LIPAPUSH_KEY}"},
        timeout=30,
    )
    # endregion
    order_id = os.environ.get("ORDER_ID") or uuid.uuid4().hex[:12]

    # region push
    # One Idempotency-Key per order: if this request times out and you send it again, lipapush
    # returns the first payment instead of prompting the customer a second time.
    response = api.post(
        "/api/stk-push",
        json={"phone": CUSTOMER_PHONE, "amount": AMOUNT, "reference": order_id[:12], "name": "Wanjiku"},
        headers={"Idempotency-Key": f"order-{order_id}"},
    )
    if response.status_code != 201:
        # Every error is {"error": code, "detail": what to do}; a 422 adds "errors" per field.
        print(f"lipapush refused the push ({response.status_code}): {response.text}", file=sys.stderr)
        return 2
    payment = response.json()
    print(f"Prompt sent to {payment['phone']}: payment {payment['id']} is pending", file=sys.stderr)
    # endregion

    # region poll
    # The customer has about a minute to enter their PIN. Polling is the simplest way to learn the
    # outcome; a webhook (receive-and-verify-webhooks) tells you without asking.
    deadline = time.monotonic() + WAIT_SECONDS
    while payment["status"] == "pending" and time.monotonic() < deadline:
        time.sleep(2)
        payment = api.get(f"/api/transactions/{payment['id']}").raise_for_status().json()
    # endregion

    print(json.dumps(payment))
    return 0 if payment["status"] == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
