"""appointments.client_name: the client's name, read when the appointment is created

Revision ID: wt22_client_name
Revises: i13_assistant
"""

from alembic import op
import sqlalchemy as sa


revision = "wt22_client_name"
down_revision = "i13_assistant"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("client_name", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_column("client_name")
