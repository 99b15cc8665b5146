// Accept a payment: send an M-Pesa prompt (STK push) to a customer's phone, then wait for the outcome.
//
//   LIPAPUSH_URL=http://127.0.0.1:8000 LIPAPUSH_KEY=lp_test_... CUSTOMER_PHONE=0722000111 \
//       node accept_payment.mjs
//
// Prints the payment as JSON once it is final. Exit status: 0 paid, 1 not paid (or still pending when
// WAIT_SECONDS ran out), 2 the push was refused. Node.js 18 or later; no npm packages.
import { randomUUID } from "node:crypto";
import { api } from "./lipapush.mjs";

const CUSTOMER_PHONE = process.env.CUSTOMER_PHONE ?? "0722000111";
const AMOUNT = Number(process.env.AMOUNT ?? "150"); // whole shillings
const WAIT_SECONDS = Number(process.env.WAIT_SECONDS ?? "120");
const orderId = process.env.ORDER_ID ?? randomUUID().replaceAll("-", "").slice(0, 12);

// region push
// One Idempotency-Key per order: if this request times out and you send it again, lipapush
// returns the first payment instead of prompting the customer a second time.
const created = await api(
  "POST",
  "/api/stk-push",
  { phone: CUSTOMER_PHONE, amount: AMOUNT, reference: orderId.slice(0, 12), name: "Wanjiku" },
  { "Idempotency-Key": `order-${orderId}` },
);
if (created.status !== 201) {
  // Every error is {"error": code, "detail": what to do}; a 422 adds "errors" per field.
  console.error(`lipapush refused the push (${created.status}): ${JSON.stringify(created.body)}`);
  process.exit(2);
}
let payment = created.body;
console.error(`Prompt sent to ${payment.phone}: payment ${payment.id} is pending`);
// endregion

// region poll
// The customer has about a minute to enter their PIN. Polling is the simplest way to learn the
// outcome; a webhook (receive-and-verify-webhooks) tells you without asking.
const deadline = Date.now() + WAIT_SECONDS * 1000;
while (payment.status === "pending" && Date.now() < deadline) {
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const answer = await api("GET", `/api/transactions/${payment.id}`);
  if (answer.status !== 200) throw new Error(`GET payment: ${answer.status} ${JSON.stringify(answer.body)}`);
  payment = answer.body;
}
// endregion

console.log(JSON.stringify(payment));
process.exit(payment.status === "success" ? 0 : 1);
