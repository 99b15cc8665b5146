// Verify a lipapush webhook the Standard Webhooks way, with node:crypto only.
import { createHmac, timingSafeEqual } from "node:crypto";

// region verify
const TOLERANCE_SECONDS = 300;

export class WebhookVerificationError extends Error {}

/**
 * The event, if rawBody (a Buffer: the bytes as they arrived, never JSON parsed and stringified again)
 * is exactly what lipapush signed with `secret` within the last 5 minutes. `headers` as Node gives
 * them (lower-case names). Throws WebhookVerificationError otherwise.
 */
export function verifyWebhook(secret, headers, rawBody, nowSeconds = Date.now() / 1000) {
  const id = headers["webhook-id"];
  const timestamp = headers["webhook-timestamp"];
  const signatures = headers["webhook-signature"];
  if (!id || !timestamp || !signatures) {
    throw new WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature");
  }
  // A delivery older (or newer) than 5 minutes is refused, so a captured one cannot be replayed.
  if (!/^\d+$/.test(timestamp) || Math.abs(nowSeconds - Number(timestamp)) > TOLERANCE_SECONDS) {
    throw new WebhookVerificationError("webhook-timestamp is more than 5 minutes off this clock");
  }
  // The key is the base64 after "whsec_"; what is signed is "{id}.{timestamp}.{body}".
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const expected = createHmac("sha256", key).update(`${id}.${timestamp}.`).update(rawBody).digest();
  // Several "v1,<base64>" separated by spaces while a secret is being rotated: one match is enough.
  for (const entry of signatures.split(" ")) {
    const [version, signature] = entry.split(",");
    if (version !== "v1" || !signature) continue;
    const given = Buffer.from(signature, "base64");
    // timingSafeEqual: how long the comparison takes says nothing about where the bytes differ.
    if (given.length === expected.length && timingSafeEqual(given, expected)) {
      return JSON.parse(Buffer.from(rawBody).toString("utf8"));
    }
  }
  throw new WebhookVerificationError("no signature matches: wrong secret, or the body was changed");
}
// endregion
