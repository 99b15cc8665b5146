// A few lines over Node 18+'s global fetch: every lipapush call with the API key, JSON in and out.
export const LIPAPUSH_URL = process.env.LIPAPUSH_URL ?? "http://127.0.0.1:8000";
const LIPAPUSH_KEY = process.env.LIPAPUSH_KEY; // lp_test_... while you build, lp_live_... in production
if (!LIPAPUSH_KEY) throw new Error("Set LIPAPUSH_KEY to your API key (lp_test_... or lp_live_...)");

// region api
/** Resolves to {status, headers, body}; rejects only when no answer came (network error, timeout). */
export async function api(method, path, body = undefined, headers = {}) {
  const response = await fetch(LIPAPUSH_URL + path, {
    method,
    headers: { Authorization: `Bearer ${LIPAPUSH_KEY}`, "Content-Type": "application/json", ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : null };
}
// endregion
