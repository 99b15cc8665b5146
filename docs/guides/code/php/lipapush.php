<?php
// A small curl helper: every lipapush call with the API key, JSON in and out, and the answer's headers.
declare(strict_types=1);

final class LipapushUnreachable extends RuntimeException
{
}

// region api
/**
 * Returns ['status' => int, 'headers' => [lower-case name => value], 'body' => decoded JSON or null].
 * Throws LipapushUnreachable only when no answer came (network error, timeout).
 */
function lipapush(string $method, string $path, ?array $body = null, array $headers = []): array
{
    $key = getenv('LIPAPUSH_KEY') ?: throw new RuntimeException('Set LIPAPUSH_KEY to your API key');
    $url = (getenv('LIPAPUSH_URL') ?: 'http://127.0.0.1:8000') . $path;
    $send = ["Authorization: Bearer $key", 'Accept: application/json'];
    foreach ($headers as $name => $value) {
        $send[] = "$name: $value";
    }
    $received = [];
    $curl = curl_init($url);
    curl_setopt_array($curl, [
        CURLOPT_CUSTOMREQUEST => $method,
        CURLOPT_RETURNTRANSFER => true,
        CURLOPT_TIMEOUT => 30,
        CURLOPT_HEADERFUNCTION => function ($curl, string $line) use (&$received): int {
            if (str_contains($line, ':')) {
                [$name, $value] = explode(':', $line, 2);
                $received[strtolower(trim($name))] = trim($value);
            }
            return strlen($line);
        },
    ]);
    if ($body !== null) {
        $send[] = 'Content-Type: application/json';
        curl_setopt($curl, CURLOPT_POSTFIELDS, json_encode($body, JSON_THROW_ON_ERROR));
    }
    curl_setopt($curl, CURLOPT_HTTPHEADER, $send);
    $answer = curl_exec($curl);
    if ($answer === false) {
        throw new LipapushUnreachable("no answer from $url: " . curl_error($curl));
    }
    $status = curl_getinfo($curl, CURLINFO_RESPONSE_CODE);
    return ['status' => $status, 'headers' => $received, 'body' => json_decode($answer, true)];
}
// endregion
