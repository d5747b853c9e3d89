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

from alembic import op
import sqlalchemy as sa


revision = "i22_client_loop"
down_revision = "hj_journeys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _booking_sends_up()
    _consent_records_up()
    _slot_refills_up()
    _visit_outcome_up()
    _delivery_up()


def downgrade() -> None:
    _delivery_down()
    _visit_outcome_down()
    _slot_refills_down()
    _consent_records_down()
    _booking_sends_down()


def _booking_sends_up() -> None:
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("booking_sends", sa.JSON(), nullable=True))


def _booking_sends_down() -> None:
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_column("booking_sends")


def _consent_records_up() -> None:
    op.create_table(
        "consent_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("chat_id", sa.Integer(), nullable=True),
        sa.Column("chat_user_id", sa.Integer(), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("recorded_by", sa.Integer(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portals.id"],
            name=op.f("fk_consent_records_portal_id_portals"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_records")),
    )
    with op.batch_alter_table("consent_records", schema=None) as batch_op:
        # the identifier first: a look-up ORs them (b24app/consent/contact.py)
        batch_op.create_index("ix_consent_records_contact", ["contact_id", "portal_id"])
        batch_op.create_index("ix_consent_records_chat", ["chat_id", "portal_id"])
        batch_op.create_index("ix_consent_records_chat_user", ["chat_user_id", "portal_id"])
        batch_op.create_index("ix_consent_records_phone", ["phone", "portal_id"])


def _consent_records_down() -> None:
    op.drop_table("consent_records")


def _slot_refills_up() -> None:
    op.create_table(
        "slot_refills",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("booking_id", sa.Integer(), nullable=False),
        sa.Column("waitlist_id", sa.Integer(), nullable=True),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("freed_appointment_id", sa.Integer(), nullable=True),
        sa.Column("starts_at", sa.DateTime(), nullable=False),
        sa.Column("service", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portals.id"], name=op.f("fk_slot_refills_portal_id_portals"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["freed_appointment_id"], ["appointments.id"],
            name=op.f("fk_slot_refills_freed_appointment_id_appointments"), ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slot_refills")),
    )
    op.create_index("ix_slot_refills_portal", "slot_refills", ["portal_id", "starts_at"])
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("resource_ids", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("ends_at", sa.DateTime(), nullable=True))


def _slot_refills_down() -> None:
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_column("ends_at")
        batch_op.drop_column("resource_ids")
    op.drop_index("ix_slot_refills_portal", table_name="slot_refills")
    op.drop_table("slot_refills")


def _visit_outcome_up() -> None:
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("outcome", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("outcome_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("outcome_source", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("outcome_by", sa.Integer(), nullable=True))


def _visit_outcome_down() -> None:
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_column("outcome_by")
        batch_op.drop_column("outcome_source")
        batch_op.drop_column("outcome_at")
        batch_op.drop_column("outcome")


def _delivery_up() -> None:
    op.create_table(
        "client_chats",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.Integer(), nullable=False),
        sa.Column("connector", sa.String(length=32), nullable=False, server_default=""),
        sa.Column("target", sa.String(length=32), nullable=False, server_default=""),
        sa.Column("last_inbound_at", sa.DateTime(), nullable=True),
        sa.Column("refused", sa.String(length=32), nullable=False, server_default=""),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["portal_id"], ["portals.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("portal_id", "chat_id", name="uq_client_chats_chat"),
    )
    with op.batch_alter_table("reminder_attempts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("state", sa.String(length=16), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("message_id", sa.Integer(), nullable=True))
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("time_zone", sa.String(length=64), nullable=True))


def _delivery_down() -> None:
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_column("time_zone")
    with op.batch_alter_table("reminder_attempts", schema=None) as batch_op:
        batch_op.drop_column("message_id")
        batch_op.drop_column("state")
    op.drop_table("client_chats")
