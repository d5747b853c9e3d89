"""client_chats (portal_id, target): a reminder finds the chat the booking's read saw by the
appointment's CRM items (b24app/appointments/delivery.py chat_facts)

Revision ID: i22d_client_chat_target
Revises: i23_appointment_moves
"""

from alembic import op


revision = "i22d_client_chat_target"
down_revision = "i23_appointment_moves"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_client_chats_target", "client_chats", ["portal_id", "target"])


def downgrade() -> None:
    op.drop_index("ix_client_chats_target", table_name="client_chats")
