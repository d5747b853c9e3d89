"""Channels and delivery (issue 22): client_chats, reminder_attempts.state / message_id,
appointments.time_zone

Revision ID: channels22a_delivery
Revises: wt21_rollup_indexes
"""

from alembic import op
import sqlalchemy as sa


revision = "channels22a_delivery"
down_revision = "outcome_appointment_outcome"  # chained at merge: … → outcome → channels22a_delivery
branch_labels = None
depends_on = None


def upgrade() -> None:
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


def downgrade() -> None:
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_column("time_zone")
    with op.batch_alter_table("reminder_attempts", schema=None) as batch_op:
        batch_op.drop_column("message_id")
        batch_op.drop_column("state")
    op.drop_table("client_chats")
