"""login throttle: leaky buckets per address and username and per address (no account lockout)

The old per-username failure counts are dropped with their table: they only ever made people
wait, and the new buckets start empty (nobody is kept waiting by the upgrade).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 05:52:40.950243

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    op.drop_table('admin_login_throttles')
    op.create_table('admin_login_throttles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('username', sa.String(length=80), nullable=False),
    sa.Column('level', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('blocked_until', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_admin_login_throttles')),
    sa.UniqueConstraint('address', 'username', name=op.f('uq_admin_login_throttles_address'))
    )
    with op.batch_alter_table('admin_login_throttles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_admin_login_throttles_updated_at'), ['updated_at'], unique=False)


def downgrade():
    op.drop_table('admin_login_throttles')
    op.create_table('admin_login_throttles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=80), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_failure_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_admin_login_throttles')),
    sa.UniqueConstraint('username', name=op.f('uq_admin_login_throttles_username'))
    )
