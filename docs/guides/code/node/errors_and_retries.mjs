// Errors, retries and idempotency: what lipapush answers when something is wrong, and how to send a
// payment again without ever prompting the customer twice.
//
//   LIPAPUSH_URL=http://127.0.0.1:8000 LIPAPUSH_KEY=lp_test_... CUSTOMER_PHONE=0722000111 \
//       node errors_and_retries.mjs
//
// Prints one JSON line per step: invalid_amount, first, replay, conflict.
import { randomUUID } from "node:crypto";
import { api } from "./lipapush.mjs";

const CUSTOMER_PHONE = process.env.CUSTOMER_PHONE ?? "0722000111";
const sleep = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

// region retry
// Worth another try, with the same Idempotency-Key: too many requests (429), a failure on our side
// (500) or M-Pesa busy or slow (503). Any other 4xx needs a change to the request first; a 502 means
// M-Pesa refused the payment, which is recorded as failed: the same key would only return it again.
const RETRYABLE = new Set([429, 500, 503]);

/**
 * POST /api/stk-push, sent again after a network error, 429 or 5xx. Every attempt carries the
 * order's Idempotency-Key, so however many reach lipapush, the customer gets one prompt.
 */
async function createPayment({ orderId, phone, amount }) {
  const attempts = 4;
  for (let attempt = 1; ; attempt++) {
    let wait = 2 ** attempt;
    try {
      const response = await api(
        "POST",
        "/api/stk-push",
        { phone, amount },
        { "Idempotency-Key": `order-${orderId}` },
      );
      if (!RETRYABLE.has(response.status) || attempt === attempts) return response;
      // Retry-After (seconds) comes with every 429 and some 503s: wait at least that long.
      wait = Number(response.headers.get("retry-after") ?? wait);
    } catch (error) {
      // No answer (fetch failed, timed out): the payment may or may not exist. Sending it again
      // with the same key is safe.
      if (attempt === attempts) throw error;
    }
    await sleep(Math.min(wait, 60));
  }
}
// endregion

const show = (step, { status, body }) => console.log(JSON.stringify({ step, status, body }));

// region invalid
// A bad request changes nothing and says why: 422, {"error": "invalid_input", "detail": ...,
// "errors": {"amount": "..."}}. Show `errors` next to the form field; do not retry.
show("invalid_amount", await api("POST", "/api/stk-push", { phone: CUSTOMER_PHONE, amount: 0 }));
// endregion

// region idempotent
const orderId = randomUUID().replaceAll("-", "").slice(0, 12);
const first = await createPayment({ orderId, phone: CUSTOMER_PHONE, amount: 150 });
show("first", first);
// The same order again (a double click, a retry after a timeout): the same payment, no new prompt.
const replay = await createPayment({ orderId, phone: CUSTOMER_PHONE, amount: 150 });
show("replay", replay);
// The same key for a different payment is a bug in the caller: 409 idempotency_key_reused.
show("conflict", await createPayment({ orderId, phone: CUSTOMER_PHONE, amount: 200 }));
// endregion
process.exit(first.body.id === replay.body.id ? 0 : 1);
