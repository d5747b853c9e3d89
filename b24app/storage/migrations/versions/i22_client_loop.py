"""The client loop's tables and columns (issues 22 and 23), one migration:

* appointments.booking_sends: what Bitrix24 Booking itself sends the client for the booking
* consent_records: a client's advertising consent and opt-out («СТОП»), append-only
* slot_refills: a freed time given to a client from Booking's waitlist (issue 23 item 3);
  appointments.resource_ids / ends_at: what a booking's cancel or move frees
* appointments.outcome*: came / no-show / moved, asked of the people who saw it
* Channels and delivery (issue 22): client_chats, reminder_attempts.state / message_id,
  appointments.time_zone

Revision ID: i22_client_loop
Revises: hj_journeys
"""

from b24app.storage.migrations.ddl import add_columns
from b24app.storage.migrations.ddl import drop_columns
from b24app.storage.migrations.ddl import drop_table
from b24app.storage.migrations.ddl import integer
from b24app.storage.migrations.ddl import json
from b24app.storage.migrations.ddl import PORTAL
from b24app.storage.migrations.ddl import portal_table
from b24app.storage.migrations.ddl import string
from b24app.storage.migrations.ddl import text
from b24app.storage.migrations.ddl import timestamp

revision = "i22_client_loop"
down_revision = "hj_journeys"


def upgrade() -> None:
    add_columns("appointments", *json("booking_sends", null=True))
    portal_table(
        "consent_records", *string(16, "kind"),
        *integer("contact_id", "chat_id", "chat_user_id", null=True),
        *string(32, "phone", null=True), *string(16, "source"), *string(64, "channel"),
        *text("text"), *integer("recorded_by", null=True), *timestamp("recorded_at"),
        *timestamp("confirmed_at", null=True),
        # the identifier first: a look-up ORs them (b24app/consent/contact.py)
        indexes={
            "ix_consent_records_contact": ["contact_id", "portal_id"],
            "ix_consent_records_chat": ["chat_id", "portal_id"],
            "ix_consent_records_chat_user": ["chat_user_id", "portal_id"],
            "ix_consent_records_phone": ["phone", "portal_id"],
        },
    )
    _slot_refills_up()
    add_columns(
        "appointments", *string(16, "outcome", null=True), *timestamp("outcome_at", null=True),
        *string(16, "outcome_source", null=True), *integer("outcome_by", null=True),
    )
    _delivery_up()


def downgrade() -> None:
    drop_columns("appointments", "time_zone")
    drop_columns("reminder_attempts", "message_id", "state")
    drop_table("client_chats")
    drop_columns("appointments", "outcome_by", "outcome_source", "outcome_at", "outcome")
    drop_columns("appointments", "ends_at", "resource_ids")
    drop_table("slot_refills", "ix_slot_refills_portal")
    drop_table("consent_records")
    drop_columns("appointments", "booking_sends")


def _slot_refills_up() -> None:
    portal_table(
        "slot_refills", *integer("booking_id"),
        *integer("waitlist_id", "contact_id", "freed_appointment_id", null=True),
        *timestamp("starts_at"), *string(255, "service"), *timestamp("created_at"),
        refs=[PORTAL, ("freed_appointment_id", "appointments", "SET NULL")],
        indexes={"ix_slot_refills_portal": ["portal_id", "starts_at"]},
    )
    add_columns("appointments", *json("resource_ids", null=True), *timestamp("ends_at", null=True))


def _delivery_up() -> None:
    portal_table(
        "client_chats", *integer("chat_id"),
        *string(32, "connector", "target", default=""), *timestamp("last_inbound_at", null=True),
        *string(32, "refused", default=""), *timestamp("updated_at"),
        unique=("uq_client_chats_chat", ["portal_id", "chat_id"]),
    )
    add_columns(
        "reminder_attempts", *string(16, "state", default=""), *integer("message_id", null=True)
    )
    add_columns("appointments", *string(64, "time_zone", null=True))
