<?php
// Register your webhook receiver's URL with lipapush (once per app and mode).
//
//   LIPAPUSH_URL=http://127.0.0.1:8000 LIPAPUSH_KEY=lp_test_... \
//       WEBHOOK_URL=https://shop.example.com/lipapush/webhooks php register_endpoint.php
//
// Prints the endpoint as JSON. Its "secret" (whsec_...) is what your receiver verifies signatures
// with: keep it like a password, e.g. in the receiver's WEBHOOK_SECRET. The key needs the `webhooks` scope.
declare(strict_types=1);

require __DIR__ . '/lipapush.php';

$webhookUrl = getenv('WEBHOOK_URL') ?: throw new RuntimeException("Set WEBHOOK_URL to the receiver's URL");

// region register
$response = lipapush('POST', '/api/webhook-endpoints', [
    'url' => $webhookUrl,
    // Left out: every event type (GET /api/webhook-event-types lists them).
    'event_types' => ['payment.succeeded', 'payment.failed', 'payment.cancelled', 'payment.expired'],
    'description' => 'Shop backend',
]);
if ($response['status'] !== 201) {
    $error = json_encode($response['body']);
    fwrite(STDERR, "lipapush refused the endpoint ({$response['status']}): $error\n");
    exit(2);
}
$endpoint = $response['body'];
// endregion
echo json_encode($endpoint), "\n";
