// Register your webhook receiver's URL with lipapush (once per app and mode).
//
//   LIPAPUSH_URL=http://127.0.0.1:8000 LIPAPUSH_KEY=lp_test_... \
//       WEBHOOK_URL=https://shop.example.com/lipapush/webhooks node register_endpoint.mjs
//
// Prints the endpoint as JSON. Its "secret" (whsec_...) is what your receiver verifies signatures
// with: keep it like a password, e.g. in the receiver's WEBHOOK_SECRET. The key needs the `webhooks` scope.
import { api } from "./lipapush.mjs";

const WEBHOOK_URL = process.env.WEBHOOK_URL;
if (!WEBHOOK_URL) throw new Error("Set WEBHOOK_URL to your receiver's address");

// region register
const response = await api("POST", "/api/webhook-endpoints", {
  url: WEBHOOK_URL,
  // Left out: every event type (GET /api/webhook-event-types lists them).
  event_types: ["payment.succeeded", "payment.failed", "payment.cancelled", "payment.expired"],
  description: "Shop backend",
});
if (response.status !== 201) {
  console.error(`lipapush refused the endpoint (${response.status}): ${JSON.stringify(response.body)}`);
  process.exit(2);
}
const endpoint = response.body;
// endregion
console.log(JSON.stringify(endpoint));
