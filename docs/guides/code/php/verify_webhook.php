<?php
// Verify a lipapush webhook the Standard Webhooks way, with hash_hmac and hash_equals only.
declare(strict_types=1);

// region verify
const WEBHOOK_TOLERANCE_SECONDS = 300;

final class WebhookVerificationError extends RuntimeException
{
}

/**
 * The event, if $rawBody (the bytes as they arrived: file_get_contents('php://input'), never JSON
 * decoded and encoded again) is exactly what lipapush signed with $secret within the last 5 minutes.
 * $headers: lower-case names (webhook_headers() below). Throws WebhookVerificationError otherwise.
 */
function verify_webhook(string $secret, array $headers, string $rawBody, ?int $now = null): array
{
    $id = $headers['webhook-id'] ?? '';
    $timestamp = $headers['webhook-timestamp'] ?? '';
    $signatures = $headers['webhook-signature'] ?? '';
    if ($id === '' || $timestamp === '' || $signatures === '') {
        throw new WebhookVerificationError('missing webhook-id, webhook-timestamp or webhook-signature');
    }
    // A delivery older (or newer) than 5 minutes is refused, so a captured one cannot be replayed.
    if (!ctype_digit($timestamp) || abs(($now ?? time()) - (int) $timestamp) > WEBHOOK_TOLERANCE_SECONDS) {
        throw new WebhookVerificationError('webhook-timestamp is more than 5 minutes off this clock');
    }
    // The key is the base64 after "whsec_"; what is signed is "{id}.{timestamp}.{body}".
    $key = base64_decode(preg_replace('/^whsec_/', '', $secret), true);
    if ($key === false) {
        throw new WebhookVerificationError('the secret is not whsec_ followed by base64');
    }
    $expected = base64_encode(hash_hmac('sha256', "$id.$timestamp.$rawBody", $key, true));
    // Several "v1,<base64>" separated by spaces while a secret is being rotated: one match is enough.
    foreach (explode(' ', $signatures) as $entry) {
        [$version, $signature] = array_pad(explode(',', $entry, 2), 2, '');
        // hash_equals: how long the comparison takes says nothing about where the strings differ.
        if ($version === 'v1' && hash_equals($expected, $signature)) {
            return json_decode($rawBody, true, 512, JSON_THROW_ON_ERROR);
        }
    }
    throw new WebhookVerificationError('no signature matches: wrong secret, or the body was changed');
}

/** This request's webhook-* headers, by their lower-case names. */
function webhook_headers(): array
{
    return [
        'webhook-id' => $_SERVER['HTTP_WEBHOOK_ID'] ?? '',
        'webhook-timestamp' => $_SERVER['HTTP_WEBHOOK_TIMESTAMP'] ?? '',
        'webhook-signature' => $_SERVER['HTTP_WEBHOOK_SIGNATURE'] ?? '',
    ];
}
// endregion
