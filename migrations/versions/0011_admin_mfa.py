"""admin MFA: TOTP secrets, recovery codes, gateway settings, pending second-step sessions

Per admin a TOTP secret (enabled once confirmed, with the last time-step used, so a code is
never accepted twice), one-time recovery codes stored as SHA-256 hashes, a small key-value
table of gateway-wide settings (whether every admin must use MFA), and a flag on a login
session whose second step is still to come (app/admin_mfa.py, app/admin/sessions.py).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26 11:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('admin_mfa',
    sa.Column('admin_id', sa.Integer(), nullable=False),
    sa.Column('secret', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('enabled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_step', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['admin_id'], ['admins.id'], name=op.f('fk_admin_mfa_admin_id_admins'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('admin_id', name=op.f('pk_admin_mfa'))
    )
    op.create_table('admin_recovery_codes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('admin_id', sa.Integer(), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['admin_id'], ['admins.id'], name=op.f('fk_admin_recovery_codes_admin_id_admins'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_admin_recovery_codes'))
    )
    with op.batch_alter_table('admin_recovery_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_admin_recovery_codes_admin_id'), ['admin_id'], unique=False)

    op.create_table('gateway_settings',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=255), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_gateway_settings'))
    )
    with op.batch_alter_table('admin_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mfa_pending', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade():
    with op.batch_alter_table('admin_sessions', schema=None) as batch_op:
        batch_op.drop_column('mfa_pending')

    op.drop_table('gateway_settings')
    with op.batch_alter_table('admin_recovery_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_admin_recovery_codes_admin_id'))

    op.drop_table('admin_recovery_codes')
    op.drop_table('admin_mfa')
