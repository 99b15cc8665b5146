// A webhook receiver that trusts nothing it has not verified. Node.js 18 or later; no npm packages.
//
//   WEBHOOK_SECRET=whsec_... PORT=4242 node webhook_receiver.mjs
//
// Each verified event is printed as `verified {...}`; a delivery that fails verification is answered
// 400 and printed as `rejected: <why>`. HOST=0.0.0.0 accepts deliveries from other machines.
import http from "node:http";
import { verifyWebhook, WebhookVerificationError } from "./verify_webhook.mjs";

const WEBHOOK_SECRET = process.env.WEBHOOK_SECRET ?? ""; // whsec_..., from registering the endpoint
const HOST = process.env.HOST ?? "127.0.0.1";
const PORT = Number(process.env.PORT ?? "4242");
if (!WEBHOOK_SECRET.startsWith("whsec_")) throw new Error("Set WEBHOOK_SECRET to the endpoint's secret");

// region handle
const seen = new Set(); // use your database: webhook-id is the same on every retry of an event

function handle(webhookId, event) {
  if (seen.has(webhookId)) return; // a retry of an event already handled: answer 2xx, do nothing again
  seen.add(webhookId);
  const data = event.data;
  if (event.type === "payment.succeeded") {
    // mark the order paid: data.id, data.amount, data.receipt
  }
  const summary = { webhook_id: webhookId, type: event.type, id: data.id, status: data.status };
  console.log(`verified ${JSON.stringify(summary)}`);
}
// endregion

// region receive
const server = http.createServer((request, response) => {
  const chunks = [];
  request.on("data", (chunk) => chunks.push(chunk));
  request.on("end", () => {
    // The raw bytes as they arrived: a signature covers these, not JSON parsed and stringified again.
    const rawBody = Buffer.concat(chunks);
    let event;
    try {
      event = verifyWebhook(WEBHOOK_SECRET, request.headers, rawBody);
    } catch (error) {
      if (!(error instanceof WebhookVerificationError || error instanceof SyntaxError)) throw error;
      console.log(`rejected: ${error.message}`);
      response.writeHead(400, { "Content-Type": "text/plain" }).end("signature not verified");
      return;
    }
    handle(request.headers["webhook-id"], event);
    // Any 2xx within 15 seconds; do slow work after answering.
    response.writeHead(200, { "Content-Type": "text/plain" }).end("ok");
  });
});
// endregion

server.listen(PORT, HOST, () => console.log(`listening on http://${HOST}:${PORT}`));
