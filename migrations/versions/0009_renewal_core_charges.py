"""renewal and Core charges: every attempt's Midtrans order id, a Core charge's payment
details, a per-order callback URL

Every Midtrans order id an order used gets a row of its own (looked up by notifications and
status answers about an earlier attempt after a renewal); the ids kept so far in
transactions.midtrans_order_ids are copied there. A Core API charge's answer (VA number,
bill key, QR, 3DS URL) is kept on the order, and so is the client's per-order callback URL.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 09:15:00.000000

"""
from datetime import UTC, datetime
import json

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    attempts = op.create_table('payment_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('transaction_id', sa.Integer(), nullable=False),
    sa.Column('midtrans_order_id', sa.String(length=50), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['transaction_id'], ['transactions.id'], name=op.f('fk_payment_attempts_transaction_id_transactions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_attempts')),
    sa.UniqueConstraint('midtrans_order_id', name=op.f('uq_payment_attempts_midtrans_order_id'))
    )
    with op.batch_alter_table('payment_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_attempts_transaction_id'), ['transaction_id'], unique=False)

    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payment_details', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('callback_url', sa.Text(), nullable=True))

    # Every id an order used so far (its current one included).
    conn = op.get_bind()
    now = datetime.now(UTC)
    seen = set()
    rows = []
    for txn_id, current, used, amount in conn.execute(
        sa.text('SELECT id, midtrans_order_id, midtrans_order_ids, amount FROM transactions ORDER BY id')
    ):
        if isinstance(used, str):
            try:
                used = json.loads(used)
            except ValueError:
                used = None
        ids = [i for i in (used if isinstance(used, list) else []) if isinstance(i, str)]
        for ident in [*ids, current]:
            if ident and ident not in seen:
                seen.add(ident)
                rows.append({'transaction_id': txn_id, 'midtrans_order_id': ident, 'amount': amount, 'created_at': now})
    if rows:
        op.bulk_insert(attempts, rows)


def downgrade():
    # The table referring to transactions goes first: SQLite's batch mode rebuilds that table.
    with op.batch_alter_table('payment_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payment_attempts_transaction_id'))

    op.drop_table('payment_attempts')

    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.drop_column('callback_url')
        batch_op.drop_column('payment_details')
