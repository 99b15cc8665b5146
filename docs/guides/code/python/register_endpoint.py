"""Register your webhook receiver's URL with lipapush (once per app and mode).

    pip install httpx
    LIPAPUSH_URL=http://127.0.0.1:8000 LIPAPUSH_KEY=lp_test_... \
        WEBHOOK_URL=https://shop.example.com/lipapush/webhooks python register_endpoint.py

Prints the endpoint as JSON. Its "secret" (whsec_...) is what your receiver verifies signatures with:
keep it like a password, e.g. in the receiver's WEBHOOK_SECRET.
"""

import json
import os
import sys

import httpx

LIPAPUSH_URL = os.environ.get("LIPAPUSH_URL", "http://127.0.0.1:8000")
LIPAPUSH_KEY = os.environ["LIPAPUSH_KEY"]  # needs the `webhooks` scope
WEBHOOK_URL = os.environ["WEBHOOK_URL"]


def main() -> int:
    api = httpx.Client(base_url=LIPAPUSH_URL, headers={"Authorization": f"Bearer {LIPAPUSH_KEY}"}, timeout=30)
    # region register
    response = api.post(
        "/api/webhook-endpoints",
        json={
            "url": WEBHOOK_URL,
            # Left out: every event type (GET /api/webhook-event-types lists them).
            "event_types": ["payment.succeeded", "payment.failed", "payment.cancelled", "payment.expired"],
            "description": "Shop backend",
        },
    )
    if response.status_code != 201:
        print(f"lipapush refused the endpoint ({response.status_code}): {response.text}", file=sys.stderr)
        return 2
    endpoint = response.json()
    # endregion
    print(json.dumps(endpoint))
    return 0


if __name__ == "__main__":
    sys.exit(main())
