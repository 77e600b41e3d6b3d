"""Notifications from the simulator running as its own process, to a real HTTP receiver:
Midtrans's retry policy (scaled by the time factor), duplicates and reordering."""

import hashlib
import time

import pytest
import requests

TIME_FACTOR = 0.00005  # retry waits of 3 ms, 15 ms, 90 ms, 270 ms, 720 ms
RETRY_WAITS = (60, 300, 1800, 5400, 14400)  # Midtrans's, in seconds


@pytest.fixture
def sim(simulator_url, auth, receiver):
    """Helpers against the live simulator; notifications of its orders go to `receiver`."""

    class Sim:
        url = simulator_url

        def config(self, **changes):
            requests.post(f"{self.url}/_sim/config", json=changes, timeout=5).raise_for_status()

        def create(self, order_id, notify=None):
            headers = {**auth, "X-Override-Notification": notify or receiver.url}
            body = {"transaction_details": {"order_id": order_id, "gross_amount": 25000}}
            answer = requests.post(
                f"{self.url}/snap/v1/transactions", json=body, headers=headers, timeout=5
            )
            assert answer.status_code == 201

        def control(self, order_id, action, **body):
            answer = requests.post(
                f"{self.url}/_sim/transactions/{order_id}/{action}", json=body, timeout=5
            )
            assert answer.status_code == 200, answer.text
            return answer.json()

        def attempts(self):
            return requests.get(f"{self.url}/_sim/notifications", timeout=5).json()

    helper = Sim()
    helper.config(time_factor=TIME_FACTOR)
    return helper


def statuses(received):
    return [r.json()["transaction_status"] for r in received]


def test_notifications_arrive_signed_over_http(sim, receiver, server_key):
    sim.create("ORDER-1")
    sim.control("ORDER-1", "pay", payment_type="gopay")

    received = receiver.arrived(2)

    assert statuses(received) == ["pending", "settlement"]
    body = received[1].json()
    text = f"ORDER-1{body['status_code']}25000.00{server_key}"
    assert body["signature_key"] == hashlib.sha512(text.encode()).hexdigest()


@pytest.mark.parametrize(("answer", "attempts"), [(500, 2), (404, 3), (400, 3), (503, 5)])
def test_a_failed_notification_is_retried_as_midtrans_does(sim, receiver, answer, attempts):
    receiver.answers = [answer] * 10
    sim.create("ORDER-1")

    sim.control("ORDER-1", "choose")
    receiver.arrived(attempts)
    time.sleep(2 * RETRY_WAITS[attempts - 1] * TIME_FACTOR + 0.1)  # past another retry's time

    assert len(receiver.received) == attempts
    logged = sim.attempts()
    assert [entry["attempt"] for entry in logged] == list(range(1, attempts + 1))
    assert {entry["status"] for entry in logged} == {answer}


def test_retry_waits_grow(sim, receiver):
    receiver.answers = [503] * 5
    sim.create("ORDER-1")

    sim.control("ORDER-1", "choose")
    times = [r.at for r in receiver.arrived(5)]

    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    assert gaps[3] > gaps[1] > 0
    assert gaps[3] >= 5400 * TIME_FACTOR * 0.9  # Midtrans waits 90 minutes before retry 4


def test_retries_stop_at_the_first_success(sim, receiver):
    receiver.answers = [503, 200]
    sim.create("ORDER-1")

    sim.control("ORDER-1", "choose")
    receiver.arrived(2)
    time.sleep(0.3)

    assert len(receiver.received) == 2


def test_an_unreachable_url_is_retried_five_times(sim, wait_until):
    sim.create("ORDER-1", notify="http://127.0.0.1:9/nothing-listens-here")

    sim.control("ORDER-1", "choose")
    logged = wait_until(lambda: [e for e in sim.attempts() if e["attempt"] == 6])
    time.sleep(0.3)

    assert len(sim.attempts()) == 6
    assert logged[0]["status"] is None and logged[0]["error"]


def test_a_slow_receiver_does_not_slow_the_api(sim, receiver, wait_until):
    receiver.delay = 1.0
    sim.create("ORDER-1")

    started = time.monotonic()
    sim.control("ORDER-1", "pay")

    assert time.monotonic() - started < 0.5
    assert wait_until(lambda: len(sim.attempts()) == 2)  # both answered, slowly


def test_duplicate_sends_every_notification_twice(sim, receiver):
    sim.config(duplicate=True)
    sim.create("ORDER-1")

    sim.control("ORDER-1", "pay", payment_type="qris")

    received = receiver.arrived(4)
    assert statuses(received) == ["pending", "pending", "settlement", "settlement"]
    assert received[0].json() == received[1].json()


def test_reorder_holds_an_orders_notifications_and_sends_them_newest_first(sim, receiver):
    sim.config(reorder=True)
    sim.create("ORDER-1")

    sim.control("ORDER-1", "choose")
    time.sleep(0.3)
    held = len(receiver.received)
    sim.control("ORDER-1", "pay")

    assert held == 0
    assert statuses(receiver.arrived(2)) == ["settlement", "pending"]


def test_switching_reorder_off_releases_what_is_held(sim, receiver):
    sim.config(reorder=True)
    sim.create("ORDER-1")
    sim.control("ORDER-1", "choose")

    sim.config(reorder=False)

    assert statuses(receiver.arrived(1)) == ["pending"]
