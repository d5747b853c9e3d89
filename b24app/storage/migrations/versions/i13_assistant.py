"""assistant dialogs and turns

Revision ID: i13_assistant
Revises: i12_appointments
Create Date: 2026-11-28 01:40:00
"""

import sqlalchemy as sa

from b24app.storage.migrations.ddl import create_table
from b24app.storage.migrations.ddl import drop_table
from b24app.storage.migrations.ddl import integer
from b24app.storage.migrations.ddl import json
from b24app.storage.migrations.ddl import numeric
from b24app.storage.migrations.ddl import portal_table
from b24app.storage.migrations.ddl import string
from b24app.storage.migrations.ddl import text
from b24app.storage.migrations.ddl import timestamp

revision = "i13_assistant"
down_revision = "i15_rollup"  # re-chained at merge: i11 → i12 → i15 → i13


def upgrade() -> None:
    portal_table(
        "assistant_dialogs", *string(64, "chat_id", "dialog_id"), *integer("bot_id"),
        *string(32, "line_id"), *string(64, "channel"),
        *integer("client_user_id", "lead_id", "deal_id", "contact_id", null=True),
        *string(16, "state"), *json("slots"), *string(32, "handoff_reason", null=True),
        *timestamp("handoff_at", "operator_notified_at", "booked_at", "booking_start",
                   "booking_end", null=True),
        *integer("booking_id", "appointment_id", null=True),
        *timestamp("confirmed_at", null=True), *integer("turns"),
        *timestamp("created_at", "updated_at"),
        unique=("uq_assistant_dialogs_chat", ["portal_id", "chat_id"]),
        indexes={"ix_assistant_dialogs_portal_created": ["portal_id", "created_at"]},
    )
    create_table(
        "assistant_turns", *integer("id", "dialog_id"),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        *string(16, "state_before", "state_after"), *json("understood"),
        *numeric(4, 2, "confidence"), *string(16, "source"), *text("reply"), *json("actions"),
        *timestamp("received_at"), *timestamp("answered_at", null=True),
        *integer("think_ms", "total_ms"),
        refs=[("dialog_id", "assistant_dialogs", "CASCADE")],
        unique=("uq_assistant_turns_message", ["dialog_id", "message_id"]),
    )


def downgrade() -> None:
    drop_table("assistant_turns")
    drop_table("assistant_dialogs", "ix_assistant_dialogs_portal_created")
