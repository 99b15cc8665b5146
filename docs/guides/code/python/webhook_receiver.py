"""A webhook receiver that trusts nothing it has not verified.

    pip install standardwebhooks
    WEBHOOK_SECRET=whsec_... PORT=4242 python webhook_receiver.py

Each verified event is printed as `verified {...}`; a delivery that fails verification is answered
400 and printed as `rejected: <why>`. HOST=0.0.0.0 accepts deliveries from other machines.
"""

import json
import os
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

WEBHOOK_SECRET = os.environ.get("WEBHOOK_SECRET", "")  # whsec_..., from registering the endpoint
HOST = os.environ.get("HOST", "127.0.0.1")
PORT = int(os.environ.get("PORT", "4242"))


# region verify
def verify_webhook(secret: str, body: bytes, headers: Mapping[str, str]) -> Any:
    """The event, if `body` is exactly what lipapush signed with `secret` within the last 5 minutes.

    Standard Webhooks: an HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}", compared in
    constant time with each "v1,<base64>" in webhook-signature (two of them while a secret is being
    rotated); a timestamp more than 300 seconds off this machine's clock is refused, so a captured
    delivery cannot be replayed later. Raises WebhookVerificationError, or ValueError for a header
    that is not even well formed.
    """
    return Webhook(secret).verify(body, dict(headers))


# endregion


# region handle
seen: set[str] = set()  # use your database: webhook-id is the same on every retry of an event


def handle(webhook_id: str, event: dict[str, Any]) -> None:
    if webhook_id in seen:
        return  # a retry of an event already handled: answer 2xx, do nothing again
    seen.add(webhook_id)
    data = event["data"]
    if event["type"] == "payment.succeeded":
        pass  # mark the order paid: data["id"], data["amount"], data["receipt"]
    summary = {
        "webhook_id": webhook_id,
        "type": event["type"],
        "id": data.get("id"),
        "status": data.get("status"),
    }
    print("verified " + json.dumps(summary), flush=True)


# endregion


class Receiver(BaseHTTPRequestHandler):
    # region receive
    def do_POST(self) -> None:
        # The raw bytes as they arrived: a signature covers these, not JSON parsed and dumped again.
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            event = verify_webhook(WEBHOOK_SECRET, body, headers)
        except (WebhookVerificationError, ValueError) as exc:
            print(f"rejected: {exc}", flush=True)
            self.answer(400, "signature not verified")
            return
        handle(headers["webhook-id"], event)
        self.answer(200, "ok")  # any 2xx within 15 seconds; do slow work after answering

    # endregion

    def answer(self, status: int, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the lines above say what happened


if __name__ == "__main__":
    if not WEBHOOK_SECRET.startswith("whsec_"):
        raise SystemExit("Set WEBHOOK_SECRET to the endpoint's secret (whsec_...)")
    print(f"listening on http://{HOST}:{PORT}", flush=True)
    ThreadingHTTPServer((HOST, PORT), Receiver).serve_forever()
