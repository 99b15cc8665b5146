<?php
// Errors, retries and idempotency: what lipapush answers when something is wrong, and how to send a
// payment again without ever prompting the customer twice.
//
//   LIPAPUSH_URL=http://127.0.0.1:8000 LIPAPUSH_KEY=lp_test_... CUSTOMER_PHONE=0722000111 \
//       php errors_and_retries.php
//
// Prints one JSON line per step: invalid_amount, first, replay, conflict.
declare(strict_types=1);

require __DIR__ . '/lipapush.php';

$customerPhone = getenv('CUSTOMER_PHONE') ?: '0722000111';

// region retry
// Worth another try, with the same Idempotency-Key: too many requests (429), a failure on our side
// (500) or M-Pesa busy or slow (503). Any other 4xx needs a change to the request first; a 502 means
// M-Pesa refused the payment, which is recorded as failed: the same key would only return it again.
const RETRYABLE = [429, 500, 503];

/**
 * POST /api/stk-push, sent again after a network error, 429 or 5xx. Every attempt carries the
 * order's Idempotency-Key, so however many reach lipapush, the customer gets one prompt.
 */
function create_payment(string $orderId, string $phone, int $amount): array
{
    $attempts = 4;
    for ($attempt = 1; ; $attempt++) {
        $wait = 2 ** $attempt;
        try {
            $response = lipapush(
                'POST',
                '/api/stk-push',
                ['phone' => $phone, 'amount' => $amount],
                ['Idempotency-Key' => "order-$orderId"],
            );
            if (!in_array($response['status'], RETRYABLE, true) || $attempt === $attempts) {
                return $response;
            }
            // Retry-After (seconds) comes with every 429 and some 503s: wait at least that long.
            $wait = (int) ($response['headers']['retry-after'] ?? $wait);
        } catch (LipapushUnreachable $error) {
            // No answer: the payment may or may not exist. Sending it again with the same key is safe.
            if ($attempt === $attempts) {
                throw $error;
            }
        }
        sleep(min($wait, 60));
    }
}
// endregion

function show(string $step, array $response): void
{
    echo json_encode(['step' => $step, 'status' => $response['status'], 'body' => $response['body']]), "\n";
}

// region invalid
// A bad request changes nothing and says why: 422, {"error": "invalid_input", "detail": ...,
// "errors": {"amount": "..."}}. Show `errors` next to the form field; do not retry.
show('invalid_amount', lipapush('POST', '/api/stk-push', ['phone' => $customerPhone, 'amount' => 0]));
// endregion

// region idempotent
$orderId = bin2hex(random_bytes(6));
$first = create_payment($orderId, $customerPhone, 150);
show('first', $first);
// The same order again (a double click, a retry after a timeout): the same payment, no new prompt.
$replay = create_payment($orderId, $customerPhone, 150);
show('replay', $replay);
// The same key for a different payment is a bug in the caller: 409 idempotency_key_reused.
show('conflict', create_payment($orderId, $customerPhone, 200));
// endregion
exit($first['body']['id'] === $replay['body']['id'] ? 0 : 1);
