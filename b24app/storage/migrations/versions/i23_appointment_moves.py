"""appointments.moved_at / moved_from: the last move of a visit to another time (the KPI
"rescheduled", issue 23)

Revision ID: i23_appointment_moves
Revises: i22_client_loop
"""

from b24app.storage.migrations.ddl import add_columns
from b24app.storage.migrations.ddl import drop_columns
from b24app.storage.migrations.ddl import timestamp

revision = "i23_appointment_moves"
down_revision = "i22_client_loop"


def upgrade() -> None:
    add_columns("appointments", *timestamp("moved_at", "moved_from", null=True))


def downgrade() -> None:
    drop_columns("appointments", "moved_from", "moved_at")
