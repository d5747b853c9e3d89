"""slot_refills: a freed time given to a client from Booking's waitlist (issue 23 item 3);
appointments.resource_ids / ends_at: what a booking's cancel or move frees

Revision ID: reschedule_slot_refills
Revises: wt21_rollup_indexes
"""

from alembic import op
import sqlalchemy as sa


revision = "reschedule_slot_refills"
down_revision = "hc_consent_records"  # chained at merge: … → hc_consent_records → reschedule_slot_refills
branch_labels = None
depends_on = None


def upgrade() -> None:
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


def downgrade() -> None:
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_column("ends_at")
        batch_op.drop_column("resource_ids")
    op.drop_index("ix_slot_refills_portal", table_name="slot_refills")
    op.drop_table("slot_refills")
