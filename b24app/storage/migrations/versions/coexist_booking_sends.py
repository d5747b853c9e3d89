"""appointments.booking_sends: what Bitrix24 Booking itself sends the client for the booking

Revision ID: coexist_booking_sends
Revises: wt21_rollup_indexes
"""

from alembic import op
import sqlalchemy as sa


revision = "coexist_booking_sends"
down_revision = "hj_journeys"  # chained at merge: hj_journeys → coexist_booking_sends
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("booking_sends", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_column("booking_sends")
