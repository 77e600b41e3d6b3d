<?php
// A billing system's side of the gateway (WHMCS-style), in PHP with cURL.
//
//   GATEWAY_URL=http://localhost:5000 APP_CODE=biling API_KEY=... \
//       php examples/whmcs_client.php pay INV-2026-001 150000
//   php examples/whmcs_client.php status INV-2026-001
//   php examples/whmcs_client.php refund INV-2026-001 50000 "one item returned" credit-note-7
//
// `pay` is also how a reopened invoice gets paid: when the invoice's last link is dead
// (expired, cancelled), the same call answers a new link; a paid invoice is never charged
// again (its answer says "outcome": "paid"). Each command prints one JSON object: what the
// billing system would store.

function gateway_call(string $method, string $path, ?array $body = null): array
{
    $url = rtrim(getenv('GATEWAY_URL') ?: 'http://localhost:5000', '/') . $path;
    $curl = curl_init($url);
    $headers = [
        'X-App-Code: ' . getenv('APP_CODE'),
        'X-Api-Key: ' . getenv('API_KEY'),
        'Content-Type: application/json',
    ];
    curl_setopt_array($curl, [
        CURLOPT_CUSTOMREQUEST => $method,
        CURLOPT_HTTPHEADER => $headers,
        CURLOPT_RETURNTRANSFER => true,
        CURLOPT_TIMEOUT => 30,
    ]);
    if ($body !== null) {
        curl_setopt($curl, CURLOPT_POSTFIELDS, json_encode($body));
    }
    $raw = curl_exec($curl);
    $status = curl_getinfo($curl, CURLINFO_HTTP_CODE);
    curl_close($curl);
    $data = json_decode($raw === false ? 'null' : $raw, true);
    if (!is_array($data)) {
        return [$status ?: 599, ['error' => ['code' => 'no_answer', 'message' => 'no JSON answer']]];
    }
    return [$status, $data];
}

function pay_invoice(string $invoiceId, int $amount): array
{
    return gateway_call('POST', '/charge', ['order_id' => $invoiceId, 'amount' => $amount]);
}

function refund_invoice(string $invoiceId, ?int $amount, string $reason, string $refundKey): array
{
    // Keep $refundKey with the credit note: sending it again never refunds twice.
    $body = ['reason' => $reason, 'refund_key' => $refundKey];
    if ($amount !== null) {
        $body['amount'] = $amount;
    }
    return gateway_call('POST', '/transactions/' . rawurlencode($invoiceId) . '/refund', $body);
}

$command = $argv[1] ?? '';
$invoiceId = $argv[2] ?? '';
if ($command === 'pay') {
    [$status, $data] = pay_invoice($invoiceId, (int) ($argv[3] ?? 0));
} elseif ($command === 'status') {
    [$status, $data] = gateway_call('GET', '/status/' . rawurlencode($invoiceId));
} elseif ($command === 'refund') {
    $amount = isset($argv[3]) && $argv[3] !== '' ? (int) $argv[3] : null;
    $key = $argv[5] ?? bin2hex(random_bytes(16));
    [$status, $data] = refund_invoice($invoiceId, $amount, $argv[4] ?? 'refund', $key);
} else {
    fwrite(STDERR, "usage: php whmcs_client.php pay|status|refund INVOICE [...]\n");
    exit(2);
}
if ($status >= 400) {
    echo json_encode(['error' => $data['error']['code'], 'message' => $data['error']['message']]), "\n";
    exit(1);
}
echo json_encode($data), "\n";
