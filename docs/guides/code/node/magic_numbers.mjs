// Test mode: one payment to each of the simulator's magic numbers, and the status each one ends in.
//
//   LIPAPUSH_URL=http://127.0.0.1:8000 LIPAPUSH_KEY=lp_test_... node magic_numbers.mjs
//
// The phones are PHONE_PREFIX (default 071234) followed by the four digits. Prints one JSON line per
// payment once all are final (9999 waits for reconciliation: up to 2 minutes with serve's defaults).
import { api } from "./lipapush.mjs";

const PHONE_PREFIX = process.env.PHONE_PREFIX ?? "071234";
const WAIT_SECONDS = Number(process.env.WAIT_SECONDS ?? "180");

// region numbers
// The last four digits of the customer's phone choose what the simulator does.
const MAGIC_ENDINGS = ["0111", "1032", "1037", "2001", "0001", "1019", "9999", "9998"];
// endregion

const pending = new Map();
for (const ending of MAGIC_ENDINGS) {
  const response = await api("POST", "/api/stk-push", { phone: PHONE_PREFIX + ending, amount: 10 });
  if (response.status !== 201) {
    console.error(`push to ${PHONE_PREFIX + ending} refused: ${JSON.stringify(response.body)}`);
    process.exit(2);
  }
  pending.set(ending, response.body.id);
}

const deadline = Date.now() + WAIT_SECONDS * 1000;
while (pending.size > 0 && Date.now() < deadline) {
  await new Promise((resolve) => setTimeout(resolve, 2000));
  for (const [ending, paymentId] of pending) {
    const { body: payment } = await api("GET", `/api/transactions/${paymentId}`);
    if (payment.status === "pending") continue;
    pending.delete(ending);
    const { phone, status, result_code, result_desc } = payment;
    console.log(JSON.stringify({ ending, phone, status, result_code, result_desc }));
  }
}
process.exit(pending.size > 0 ? 1 : 0);
