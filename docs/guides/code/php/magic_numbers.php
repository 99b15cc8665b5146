<?php
// Test mode: one payment to each of the simulator's magic numbers, and the status each one ends in.
//
//   LIPAPUSH_URL=http://127.0.0.1:8000 LIPAPUSH_KEY=lp_test_... php magic_numbers.php
//
// The phones are PHONE_PREFIX (default 071234) followed by the four digits. Prints one JSON line per
// payment once all are final (9999 waits for reconciliation: up to 2 minutes with serve's defaults).
declare(strict_types=1);

require __DIR__ . '/lipapush.php';

$phonePrefix = getenv('PHONE_PREFIX') ?: '071234';
$waitSeconds = (int) (getenv('WAIT_SECONDS') ?: 180);

// region numbers
// The last four digits of the customer's phone choose what the simulator does.
const MAGIC_ENDINGS = ['0111', '1032', '1037', '2001', '0001', '1019', '9999', '9998'];
// endregion

$pending = [];
foreach (MAGIC_ENDINGS as $ending) {
    $response = lipapush('POST', '/api/stk-push', ['phone' => $phonePrefix . $ending, 'amount' => 10]);
    if ($response['status'] !== 201) {
        fwrite(STDERR, "push to $phonePrefix$ending refused: " . json_encode($response['body']) . "\n");
        exit(2);
    }
    $pending[$ending] = $response['body']['id'];
}

$deadline = time() + $waitSeconds;
while ($pending && time() < $deadline) {
    sleep(2);
    foreach ($pending as $ending => $paymentId) {
        $payment = lipapush('GET', "/api/transactions/$paymentId")['body'];
        if ($payment['status'] === 'pending') {
            continue;
        }
        unset($pending[$ending]);
        $fields = array_flip(['phone', 'status', 'result_code', 'result_desc']);
        $outcome = array_intersect_key($payment, $fields);
        echo json_encode(['ending' => (string) $ending] + $outcome), "\n";
    }
}
exit($pending ? 1 : 0);
