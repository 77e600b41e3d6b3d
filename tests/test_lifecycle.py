"""Property-based test of the ordering rules: Midtrans's answers about one order, delivered
late, duplicated and in any order, always leave the order at Midtrans's latest truth once
that truth has been seen, and the event log never shows a backward move."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from support import SERVER_KEY, reset_database

from app import create_app
from app.extensions import db
from app.models import App, EventSource, LinkState, Transaction, TransactionEvent
from app.payments import apply_midtrans_status, can_move

# Real lifecycles at Midtrans: (transaction_status, fraud_status) in the order they happen.
LIFECYCLES = [
    [("pending", None), ("settlement", "accept")],
    [
        ("pending", None),
        ("settlement", "accept"),
        ("partial_refund", "accept"),
        ("refund", "accept"),
    ],
    [("pending", None), ("expire", None)],
    [("pending", None), ("cancel", None)],
    [("pending", None), ("deny", None)],
    [("capture", "challenge"), ("capture", "accept"), ("settlement", "accept")],
    [("capture", "challenge"), ("deny", "deny")],
    [
        ("authorize", "accept"),
        ("capture", "accept"),
        ("settlement", "accept"),
        ("chargeback", "accept"),
    ],
    [("pending", None), ("settlement", "accept"), ("deny", "deny")],
    [("capture", "accept"), ("cancel", "accept")],
]


class OrderedDelivery(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.folder = tempfile.TemporaryDirectory()
        self.app = create_app(
            {
                "DATABASE_URL": f"sqlite:///{Path(self.folder.name) / 'p.db'}",
                "SECRET_KEY": "x" * 32,
                "MIDTRANS_SERVER_KEY": SERVER_KEY,
            }
        )
        self.context = self.app.app_context()
        self.context.push()
        reset_database()
        client_app = App(code="p", name="p", key_hash="0" * 64, order_prefix="")
        db.session.add(client_app)
        db.session.flush()
        txn = Transaction(
            app_id=client_app.id,
            order_id="P-1",
            midtrans_order_id="P-1",
            amount=1000,
            request_fingerprint="f",
            request_body={},
            link_state=LinkState.CREATED,
            snap_token="t",
        )
        db.session.add(txn)
        db.session.commit()
        self.txn_id = txn.id

    def teardown(self):
        db.session.remove()
        db.engine.dispose()
        self.context.pop()
        self.folder.cleanup()

    @initialize(lifecycle=st.sampled_from(LIFECYCLES))
    def choose(self, lifecycle):
        self.lifecycle = lifecycle
        self.truth = 0  # Midtrans has reached lifecycle[truth]
        self.seen_latest = False

    @precondition(lambda self: self.truth < len(self.lifecycle) - 1)
    @rule()
    def midtrans_moves_on(self):
        self.truth += 1
        self.seen_latest = False

    @rule(data=st.data())
    def an_answer_arrives(self, data):
        """Any answer Midtrans gave so far: the latest, or a stale one arriving late."""
        index = data.draw(st.integers(min_value=0, max_value=self.truth))
        status, fraud = self.lifecycle[index]
        answer = {"transaction_status": status, "fraud_status": fraud, "gross_amount": "1000.00"}
        apply_midtrans_status(self.txn_id, answer, source=EventSource.NOTIFICATION)
        if index == self.truth:
            self.seen_latest = True

    @invariant()
    def the_latest_truth_seen_is_kept(self):
        if getattr(self, "seen_latest", False):
            txn = db.session.get(Transaction, self.txn_id)
            assert (txn.status, txn.fraud_status) == self.lifecycle[self.truth]
            db.session.commit()

    @invariant()
    def no_backward_move_in_the_event_log(self):
        for event in db.session.query(TransactionEvent):
            assert (
                can_move(
                    event.from_status,
                    event.to_status,
                    current_fraud=None,
                    new_fraud=event.fraud_status,
                )
                or event.from_status == event.to_status
            )
        db.session.commit()


OrderedDelivery.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_ordering_rules = OrderedDelivery.TestCase


def test_every_lifecycle_moves_forward_and_never_back():
    """Exhaustively: each later state may follow each earlier one, and never the reverse."""
    for lifecycle in LIFECYCLES:
        for i, (early, early_fraud) in enumerate(lifecycle):
            for late, late_fraud in lifecycle[i + 1 :]:
                assert can_move(early, late, current_fraud=early_fraud, new_fraud=late_fraud), (
                    f"{early}/{early_fraud} -> {late}/{late_fraud} should apply"
                )
                if (late, late_fraud) != (early, early_fraud):
                    assert not can_move(
                        late, early, current_fraud=late_fraud, new_fraud=early_fraud
                    ), f"{late}/{late_fraud} -> {early}/{early_fraud} is a backward move"
