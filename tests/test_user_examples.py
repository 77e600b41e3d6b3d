"""The Python and PHP examples from the user's own API document (seed 002, in Indonesian), run as
they are written (only the port changed) against the gateway under gunicorn, backed by the
simulator. The app is the one the document uses: code `biling`, its API key, no order prefix.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
import requests
from e2e.servers import start_stack

pytestmark = pytest.mark.timeout(60)

USER_DOC_KEY = "fb93b4e802314a189809f393d913bba6"

# "A. Python (Requests)", verbatim but for the port.
PYTHON_EXAMPLE = """\
import requests
import json

url = "http://localhost:5000/charge"

payload = {
    "order_id": "TAGIHAN-001",
    "amount": 50000,
    "customer_details": {
        "first_name": "Andri",
        "email": "andri@indoweb.id",
        "phone": "08123456789"
    }
}

headers = {
    'X-App-Code': 'biling',
    'X-Api-Key': 'fb93b4e802314a189809f393d913bba6', # Ganti dengan API Key asli
    'Content-Type': 'application/json'
}

try:
    response = requests.post(url, headers=headers, json=payload)
    if response.status_code == 201:
        data = response.json()
        print("Link Bayar:", data['redirect_url'])
    else:
        print("Error:", response.text)
except Exception as e:
    print(e)
"""

# "B. PHP (cURL)", verbatim but for the port. The document as pasted lost the example's first
# lines (it starts at `"INV-" . time(),`); the three lines up to `"order_id" =>` are the obvious
# reconstruction: the PHP tag, the cURL handle the code uses as $curl, and the $payload array
# that json_encode($payload) sends.
PHP_EXAMPLE = """\
<?php
$curl = curl_init();
$payload = [
    "order_id" => "INV-" . time(),
    "amount" => 100000,
    "customer_details" => [
        "first_name" => "Client",
        "email" => "client@example.com"
    ]
];

curl_setopt_array($curl, array(
  CURLOPT_URL => 'http://localhost:5000/charge',
  CURLOPT_RETURNTRANSFER => true,
  CURLOPT_ENCODING => '',
  CURLOPT_MAXREDIRS => 10,
  CURLOPT_TIMEOUT => 0,
  CURLOPT_FOLLOWLOCATION => true,
  CURLOPT_HTTP_VERSION => CURL_HTTP_VERSION_1_1,
  CURLOPT_CUSTOMREQUEST => 'POST',
  CURLOPT_POSTFIELDS => json_encode($payload),
  CURLOPT_HTTPHEADER => array(
    'X-App-Code: biling',
    'X-Api-Key: fb93b4e802314a189809f393d913bba6',
    'Content-Type: application/json'
  ),
));

$response = curl_exec($curl);
$httpcode = curl_getinfo($curl, CURLINFO_HTTP_CODE);
curl_close($curl);

if ($httpcode == 201) {
    $data = json_decode($response, true);
    echo "Silakan bayar di sini: " . $data['redirect_url'];
} else {
    echo "Gagal membuat transaksi: " . $response;
}
?>
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = start_stack(
        tmp_path_factory.mktemp("user-examples"),
        "--api-key",
        USER_DOC_KEY,
        "--order-prefix",
        "",
        code="biling",
        GUNICORN_WORKERS="1",
    )
    yield running
    running.stop()


def with_port(example: str, gateway_url: str) -> str:
    port = gateway_url.rsplit(":", 1)[1]
    assert example.count("localhost:5000") == 1
    return example.replace("localhost:5000", f"localhost:{port}")


def assert_payment_page(link: str, stack, order_id: str, amount_text: str) -> None:
    assert link.startswith(stack.simulator_url), link
    page = requests.get(link, timeout=10)
    assert page.status_code == 200
    assert f'id="order-id">{order_id}<' in page.text and amount_text in page.text
    assert "Choose a payment method" in page.text
    # The document's second endpoint knows the order: waiting for payment.
    status = requests.get(
        f"{stack.gateway_url}/status/{order_id}", headers=stack.headers, timeout=10
    )
    assert status.status_code == 200, status.text
    assert status.json()["transaction_status"] == "pending"


def test_python_example_prints_a_working_payment_link(stack, tmp_path):
    script = tmp_path / "contoh.py"
    script.write_text(with_port(PYTHON_EXAMPLE, stack.gateway_url))

    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30)

    assert done.returncode == 0, done.stderr
    assert "Link Bayar: http" in done.stdout, done.stdout
    link = re.search(r"Link Bayar: (\S+)", done.stdout).group(1)
    # The app has no order prefix, so Midtrans sees the order id exactly as the client sent it.
    assert_payment_page(link, stack, "TAGIHAN-001", "Rp50.000")


def php_with_curl() -> str | None:
    """The php binary, if it is installed with the curl extension."""
    php = shutil.which("php")
    if php is None:
        return None
    probe = subprocess.run([php, "-r", 'exit(function_exists("curl_init") ? 0 : 1);'])
    return php if probe.returncode == 0 else None


def test_php_example_prints_a_working_payment_link(stack, tmp_path):
    php = php_with_curl()
    if php is None:
        message = "php with the curl extension is not installed (apt-get install php-cli php-curl)"
        if os.environ.get("REQUIRE_PHP") == "1":
            pytest.fail(message + " but REQUIRE_PHP=1")
        pytest.skip(message)
    script = tmp_path / "contoh.php"
    script.write_text(with_port(PHP_EXAMPLE, stack.gateway_url))

    done = subprocess.run([php, str(script)], capture_output=True, text=True, timeout=30)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "Silakan bayar di sini: http" in done.stdout, done.stdout
    link = re.search(r"Silakan bayar di sini: (\S+)", done.stdout).group(1)
    shown = re.search(r"INV-\d{10}", requests.get(link, timeout=10).text)
    assert shown, "the payment page does not show the INV-<time> order"
    assert_payment_page(link, stack, shown.group(0), "Rp100.000")
