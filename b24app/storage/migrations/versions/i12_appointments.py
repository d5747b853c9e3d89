"""appointments: client appointments (booking / date field / robot) and reminder attempts

Revision ID: i12_appointments
Revises: i11_deals
"""

from alembic import op
import sqlalchemy as sa


revision = "i12_appointments"
# On the issue12 branch after merging issue11 (the lead re-chains at merge time).
down_revision = "i11_deals"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "appointments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("journey_id", sa.Integer(), nullable=True),
        sa.Column("booking_id", sa.Integer(), nullable=True),
        sa.Column("lead_id", sa.Integer(), nullable=True),
        sa.Column("deal_id", sa.Integer(), nullable=True),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("service", sa.String(length=255), nullable=False),
        sa.Column("starts_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("offsets", sa.JSON(), nullable=True),
        sa.Column("chat_id", sa.Integer(), nullable=True),
        sa.Column("reminded_via", sa.String(length=16), nullable=True),
        sa.Column("reminded_at", sa.DateTime(), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["journey_id"], ["leads.id"], name=op.f("fk_appointments_journey_id_leads"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portals.id"], name=op.f("fk_appointments_portal_id_portals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointments")),
        sa.UniqueConstraint("portal_id", "booking_id", name="uq_appointments_booking"),
    )
    op.create_index(
        "ix_appointments_journey", "appointments", ["portal_id", "journey_id", "starts_at"]
    )
    op.create_index("ix_appointments_kpi", "appointments", ["portal_id", "starts_at", "status"])
    op.create_index("ix_appointments_chat", "appointments", ["portal_id", "chat_id"])
    op.create_table(
        "reminder_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("error", sa.String(length=255), nullable=False),
        sa.Column("detail", sa.String(length=64), nullable=False),
        sa.Column("attempted_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["appointment_id"], ["appointments.id"],
            name=op.f("fk_reminder_attempts_appointment_id_appointments"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portals.id"], name=op.f("fk_reminder_attempts_portal_id_portals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reminder_attempts")),
    )
    op.create_index(
        "ix_reminder_attempts_appt", "reminder_attempts", ["appointment_id", "attempted_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_reminder_attempts_appt", table_name="reminder_attempts")
    op.drop_table("reminder_attempts")
    op.drop_index("ix_appointments_chat", table_name="appointments")
    op.drop_index("ix_appointments_kpi", table_name="appointments")
    op.drop_index("ix_appointments_journey", table_name="appointments")
    op.drop_table("appointments")
