"""appointments.moved_at / moved_from: the last move of a visit to another time (the KPI
"rescheduled", issue 23)

Revision ID: i23_appointment_moves
Revises: i22_client_loop
"""

from alembic import op
import sqlalchemy as sa


revision = "i23_appointment_moves"
down_revision = "i22_client_loop"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("appointments") as batch:
        batch.add_column(sa.Column("moved_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("moved_from", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("appointments") as batch:
        batch.drop_column("moved_from")
        batch.drop_column("moved_at")
