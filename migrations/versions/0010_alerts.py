"""alerts: the watched conditions and the worker's heartbeat

One row per alert condition (open or closed, its latest news, when it was last sent, where
its last check stopped), and the worker's heartbeat, written every round (app/alerts.py).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 09:50:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('alerts',
    sa.Column('key', sa.String(length=40), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('summary', sa.Text(), nullable=True),
    sa.Column('facts', sa.JSON(), nullable=True),
    sa.Column('pending', sa.Boolean(), nullable=False),
    sa.Column('last_news_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sent_count', sa.Integer(), nullable=False),
    sa.Column('cursor_id', sa.Integer(), nullable=True),
    sa.Column('cursor_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_alerts'))
    )
    op.create_table('worker_heartbeats',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('beat_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_worker_heartbeats'))
    )


def downgrade():
    op.drop_table('worker_heartbeats')
    op.drop_table('alerts')
