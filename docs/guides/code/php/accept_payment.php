<?php
// Accept a payment: send an M-Pesa prompt (STK push) to a customer's phone, then wait for the outcome.
//
//   LIPAPUSH_URL=http://127.0.0.1:8000 LIPAPUSH_KEY=lp_test_... CUSTOMER_PHONE=0722000111 \
//       php accept_payment.php
//
// Prints the payment as JSON once it is final. Exit status: 0 paid, 1 not paid (or still pending when
// WAIT_SECONDS ran out), 2 the push was refused. PHP 8.2 with the curl extension; no composer.
declare(strict_types=1);

require __DIR__ . '/lipapush.php';

$customerPhone = getenv('CUSTOMER_PHONE') ?: '0722000111';
$amount = (int) (getenv('AMOUNT') ?: 150); // whole shillings
$waitSeconds = (int) (getenv('WAIT_SECONDS') ?: 120);
$orderId = getenv('ORDER_ID') ?: bin2hex(random_bytes(6));

// region push
// One Idempotency-Key per order: if this request times out and you send it again, lipapush
// returns the first payment instead of prompting the customer a second time.
$created = lipapush(
    'POST',
    '/api/stk-push',
    [
        'phone' => $customerPhone,
        'amount' => $amount,
        'reference' => substr($orderId, 0, 12),
        'name' => 'Wanjiku',
    ],
    ['Idempotency-Key' => "order-$orderId"],
);
if ($created['status'] !== 201) {
    // Every error is {"error": code, "detail": what to do}; a 422 adds "errors" per field.
    $error = json_encode($created['body']);
    fwrite(STDERR, "lipapush refused the push ({$created['status']}): $error\n");
    exit(2);
}
$payment = $created['body'];
fwrite(STDERR, "Prompt sent to {$payment['phone']}: payment {$payment['id']} is pending\n");
// endregion

// region poll
// The customer has about a minute to enter their PIN. Polling is the simplest way to learn the
// outcome; a webhook (receive-and-verify-webhooks) tells you without asking.
$deadline = time() + $waitSeconds;
while ($payment['status'] === 'pending' && time() < $deadline) {
    sleep(2);
    $answer = lipapush('GET', "/api/transactions/{$payment['id']}");
    if ($answer['status'] !== 200) {
        throw new RuntimeException("GET payment: {$answer['status']} " . json_encode($answer['body']));
    }
    $payment = $answer['body'];
}
// endregion

echo json_encode($payment), "\n";
exit($payment['status'] === 'success' ? 0 : 1);
