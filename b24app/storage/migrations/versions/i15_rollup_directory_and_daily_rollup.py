"""portal directory (names of sources, statuses, users) and the daily KPI roll-up

Revision ID: i15_rollup
Revises: 17494ff33532
"""

import sqlalchemy as sa
from alembic import op

revision = "i15_rollup"
down_revision = "17494ff33532"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "portal_directory",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("sort", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portals.id"],
            name=op.f("fk_portal_directory_portal_id_portals"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_directory")),
        sa.UniqueConstraint("portal_id", "kind", "code", name="uq_portal_directory_key"),
    )


def downgrade() -> None:
    op.drop_table("portal_directory")
