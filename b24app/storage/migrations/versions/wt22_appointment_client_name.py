"""appointments.client_name: the client's name, read when the appointment is created

Revision ID: wt22_client_name
Revises: i13_assistant
"""

from b24app.storage.migrations.ddl import add_columns
from b24app.storage.migrations.ddl import drop_columns
from b24app.storage.migrations.ddl import string

revision = "wt22_client_name"
down_revision = "i13_assistant"


def upgrade() -> None:
    add_columns("appointments", *string(255, "client_name", null=True))


def downgrade() -> None:
    drop_columns("appointments", "client_name")
