"""Signed webhooks to the merchant's own system: the delivery layer (issue 16, part 4).

Everything here is self-contained (no database, no request path) so the pieces that store and schedule
deliveries can be built on it and tested against it:

- `signing`: Standard Webhooks over the `standardwebhooks` package. `new_secret()` makes an endpoint's
  `whsec_` secret; `signing_secrets()` lists the current one plus every rotated-out secret inside its
  24 h overlap; `new_message_id()` gives the `msg_…` id an event keeps on every attempt;
  `event_body()` renders `{"type", "created_at", "version", "data"}` as the exact minified bytes that
  are stored and sent; `sign()` gives the `webhook-id`, `webhook-timestamp` and `webhook-signature`
  headers for one attempt (a fresh timestamp each time, the same id).
- `ssrf`: `validate_endpoint_url()` at registration (InvalidInput(field="url") with what to change);
  `resolve_checked()` at send time (every address public, else BlockedTarget).
- `delivery`: `WebhookSender.send()` / `deliver()` POST one attempt over an aiohttp session whose
  resolver is `resolve_checked` (each new connection goes only to the addresses just checked), never
  following redirects, with short timeouts and a capped read, and return a `DeliveryResult` (outcome
  delivered/failed/gone, status, latency, excerpt, error, Retry-After).
- `schedule`: Svix's retry schedule (`next_attempt_at`) and the 5-day disable rule (`should_disable`).

Settings: WEBHOOK_ALLOW_PRIVATE_TARGETS (development/tests: private addresses, http, any port),
WEBHOOK_CONNECT_TIMEOUT_SECONDS, WEBHOOK_TIMEOUT_SECONDS.

What the next session wires on top:
- models: an endpoint per app and mode (URL via validate_endpoint_url, event types, enabled, secret
  encrypted with the other secrets, retired secrets with `expires_at`, `failing_since`); a message per
  event (msg id, type, body bytes from event_body, mode); an attempt row per try (the DeliveryResult
  fields, attempt number, next_attempt_at) that makes the delivery log.
- events: the payment/voucher use cases add a message per subscribed endpoint in the same unit of
  work as the change (the outbox), with the object as the API returns it and its version.
- the job: a worker with one WebhookSender (allow_private from the setting) loads a due attempt,
  signs with `signing_secrets(...)` at the attempt's time, sends, records the result, then schedules
  `next_attempt_at(...)`, disables on `gone` or `should_disable(...)` and tells the owner; replay and
  "send test event" enqueue new attempts of the same (or a `webhook.test`) message.
"""
