"""appointments.outcome*: came / no-show / moved, asked of the people who saw it

Revision ID: outcome_appointment_outcome
Revises: wt21_rollup_indexes
"""

from alembic import op
import sqlalchemy as sa


revision = "outcome_appointment_outcome"
down_revision = "reschedule_slot_refills"  # chained at merge: … → reschedule_slot_refills → outcome
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("outcome", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("outcome_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("outcome_source", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("outcome_by", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_column("outcome_by")
        batch_op.drop_column("outcome_source")
        batch_op.drop_column("outcome_at")
        batch_op.drop_column("outcome")
