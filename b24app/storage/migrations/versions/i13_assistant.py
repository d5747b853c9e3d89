"""assistant dialogs and turns

Revision ID: i13_assistant
Revises: i12_appointments
Create Date: 2026-11-28 01:40:00
"""

from alembic import op
import sqlalchemy as sa


revision = "i13_assistant"
down_revision = "i15_rollup"  # re-chained at merge: i11 → i12 → i15 → i13
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "assistant_dialogs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.String(length=64), nullable=False),
        sa.Column("dialog_id", sa.String(length=64), nullable=False),
        sa.Column("bot_id", sa.Integer(), nullable=False),
        sa.Column("line_id", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("client_user_id", sa.Integer(), nullable=True),
        sa.Column("lead_id", sa.Integer(), nullable=True),
        sa.Column("deal_id", sa.Integer(), nullable=True),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("slots", sa.JSON(), nullable=False),
        sa.Column("handoff_reason", sa.String(length=32), nullable=True),
        sa.Column("handoff_at", sa.DateTime(), nullable=True),
        sa.Column("operator_notified_at", sa.DateTime(), nullable=True),
        sa.Column("booked_at", sa.DateTime(), nullable=True),
        sa.Column("booking_start", sa.DateTime(), nullable=True),
        sa.Column("booking_end", sa.DateTime(), nullable=True),
        sa.Column("booking_id", sa.Integer(), nullable=True),
        sa.Column("appointment_id", sa.Integer(), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(), nullable=True),
        sa.Column("turns", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portals.id"],
            name=op.f("fk_assistant_dialogs_portal_id_portals"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assistant_dialogs")),
        sa.UniqueConstraint("portal_id", "chat_id", name="uq_assistant_dialogs_chat"),
    )
    op.create_index(
        "ix_assistant_dialogs_portal_created", "assistant_dialogs", ["portal_id", "created_at"]
    )
    op.create_table(
        "assistant_turns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dialog_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("state_before", sa.String(length=16), nullable=False),
        sa.Column("state_after", sa.String(length=16), nullable=False),
        sa.Column("understood", sa.JSON(), nullable=False),
        sa.Column("confidence", sa.Numeric(precision=4, scale=2), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("reply", sa.Text(), nullable=False),
        sa.Column("actions", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("answered_at", sa.DateTime(), nullable=True),
        sa.Column("think_ms", sa.Integer(), nullable=False),
        sa.Column("total_ms", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dialog_id"], ["assistant_dialogs.id"],
            name=op.f("fk_assistant_turns_dialog_id_assistant_dialogs"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assistant_turns")),
        sa.UniqueConstraint("dialog_id", "message_id", name="uq_assistant_turns_message"),
    )


def downgrade() -> None:
    op.drop_table("assistant_turns")
    op.drop_index("ix_assistant_dialogs_portal_created", table_name="assistant_dialogs")
    op.drop_table("assistant_dialogs")
