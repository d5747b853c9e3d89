"""appointments: client appointments (booking / date field / robot) and reminder attempts

Revision ID: i12_appointments
Revises: i11_deals
"""

from b24app.storage.migrations.ddl import boolean
from b24app.storage.migrations.ddl import drop_table
from b24app.storage.migrations.ddl import integer
from b24app.storage.migrations.ddl import json
from b24app.storage.migrations.ddl import PORTAL
from b24app.storage.migrations.ddl import portal_table
from b24app.storage.migrations.ddl import string
from b24app.storage.migrations.ddl import timestamp

revision = "i12_appointments"
# On the issue12 branch after merging issue11 (the lead re-chains at merge time).
down_revision = "i11_deals"


def upgrade() -> None:
    portal_table(
        "appointments",
        *integer("journey_id", "booking_id", "lead_id", "deal_id", "contact_id", null=True),
        *string(16, "source"), *string(255, "service"), *timestamp("starts_at"),
        *string(16, "status"), *json("offsets", null=True), *integer("chat_id", null=True),
        *string(16, "reminded_via", null=True),
        *timestamp("reminded_at", "confirmed_at", "cancelled_at", null=True),
        *timestamp("created_at", "updated_at"),
        refs=[("journey_id", "leads", "SET NULL"), PORTAL],
        unique=("uq_appointments_booking", ["portal_id", "booking_id"]),
        indexes={
            "ix_appointments_journey": ["portal_id", "journey_id", "starts_at"],
            "ix_appointments_kpi": ["portal_id", "starts_at", "status"],
            "ix_appointments_chat": ["portal_id", "chat_id"],
        },
    )
    portal_table(
        "reminder_attempts", *integer("appointment_id"), *string(16, "level", "channel"),
        *boolean("ok"), *string(255, "error"), *string(64, "detail"), *timestamp("attempted_at"),
        refs=[("appointment_id", "appointments", "CASCADE"), PORTAL],
        indexes={"ix_reminder_attempts_appt": ["appointment_id", "attempted_at"]},
    )


def downgrade() -> None:
    drop_table("reminder_attempts", "ix_reminder_attempts_appt")
    drop_table(
        "appointments", "ix_appointments_chat", "ix_appointments_kpi", "ix_appointments_journey"
    )
