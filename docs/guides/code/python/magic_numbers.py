"""Test mode: one payment to each of the simulator's magic numbers, and the status each one ends in.

    pip install httpx
    LIPAPUSH_URL=http://127.0.0.1:8000 LIPAPUSH_KEY=lp_test_... python magic_numbers.py

The phones are PHONE_PREFIX (default 071234) followed by the four digits. Prints one JSON line per
payment once all are final (9999 waits for reconciliation: up to 2 minutes with serve's defaults).
"""

import json
import os
import sys
import time

import httpx

LIPAPUSH_URL = os.environ.get("LIPAPUSH_URL", "http://127.0.0.1:8000")
LIPAPUSH_KEY = os.environ["LIPAPUSH_KEY"]  # a test key: only the simulator answers to these numbers
PHONE_PREFIX = os.environ.get("PHONE_PREFIX", "071234")
WAIT_SECONDS = float(os.environ.get("WAIT_SECONDS", "180"))

# region numbers
# The last four digits of the customer's phone choose what the simulator does.
MAGIC_ENDINGS = ["0111", "1032", "1037", "2001", "0001", "1019", "9999", "9998"]
# endregion


def main() -> int:
    api = httpx.Client(base_url=LIPAPUSH_URL, headers={"Authorization": f"Bearer {LIPAPUSH_KEY}"}, timeout=30)
    pending = {}
    for ending in MAGIC_ENDINGS:
        response = api.post("/api/stk-push", json={"phone": PHONE_PREFIX + ending, "amount": 10})
        if response.status_code != 201:
            print(f"push to {PHONE_PREFIX + ending} refused: {response.text}", file=sys.stderr)
            return 2
        pending[ending] = response.json()["id"]

    deadline = time.monotonic() + WAIT_SECONDS
    while pending and time.monotonic() < deadline:
        time.sleep(2)
        for ending, payment_id in list(pending.items()):
            payment = api.get(f"/api/transactions/{payment_id}").raise_for_status().json()
            if payment["status"] != "pending":
                del pending[ending]
                outcome = {k: payment[k] for k in ("phone", "status", "result_code", "result_desc")}
                print(json.dumps({"ending": ending, **outcome}))
    return 1 if pending else 0


if __name__ == "__main__":
    sys.exit(main())
