<?php
// A webhook receiver that trusts nothing it has not verified. PHP 8.2; no composer.
//
//   WEBHOOK_SECRET=whsec_... php -S 127.0.0.1:4242 webhook_receiver.php
//
// (or behind your web server, like any PHP page). Each verified event is written to stderr as
// `verified {...}`; a delivery that fails verification is answered 400 and logged as `rejected: <why>`.
declare(strict_types=1);

require __DIR__ . '/verify_webhook.php';

function report(string $line): void
{
    file_put_contents('php://stderr', $line . "\n");
}

// region handle
function handle(string $webhookId, array $event): void
{
    // webhook-id is the same on every retry of an event: handle each one once. A marker file here;
    // use your database (a unique column) in production.
    $marker = sys_get_temp_dir() . '/lipapush-webhook-' . hash('sha256', $webhookId);
    $first = @fopen($marker, 'x'); // fails when the file exists: a retry already handled
    if ($first === false) {
        return;
    }
    fclose($first);
    $data = $event['data'];
    if ($event['type'] === 'payment.succeeded') {
        // mark the order paid: $data['id'], $data['amount'], $data['receipt']
    }
    $summary = ['webhook_id' => $webhookId, 'type' => $event['type'], 'id' => $data['id'] ?? null,
        'status' => $data['status'] ?? null];
    report('verified ' . json_encode($summary));
}
// endregion

// region receive
if ($_SERVER['REQUEST_METHOD'] !== 'POST') {
    http_response_code(405);
    exit;
}
$secret = getenv('WEBHOOK_SECRET') ?: ''; // whsec_..., from registering the endpoint
if (!str_starts_with($secret, 'whsec_')) {
    report("rejected: set WEBHOOK_SECRET to the endpoint's secret (whsec_...)");
    http_response_code(500); // a 5xx: lipapush tries again later, once the secret is set
    exit;
}
// The raw bytes as they arrived: a signature covers these, not JSON decoded and encoded again.
$rawBody = file_get_contents('php://input');
try {
    $event = verify_webhook($secret, webhook_headers(), $rawBody);
} catch (WebhookVerificationError | JsonException $error) {
    report('rejected: ' . $error->getMessage());
    http_response_code(400);
    echo 'signature not verified';
    exit;
}
handle(webhook_headers()['webhook-id'], $event);
http_response_code(200); // any 2xx within 15 seconds; do slow work after answering
echo 'ok';
// endregion
