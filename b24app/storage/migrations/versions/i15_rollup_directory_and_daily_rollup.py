"""portal directory (names of sources, statuses, users) and the daily KPI roll-up

Revision ID: i15_rollup
Revises: i11_deals
"""

import sqlalchemy as sa
from alembic import op

revision = "i15_rollup"
down_revision = "i12_appointments"  # re-chained at merge: issue11 → issue12 → issue15
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


    op.create_table(
        "kpi_daily",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("grain", sa.String(length=1), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("dim", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("leads", sa.Integer(), nullable=False),
        sa.Column("bookings", sa.Integer(), nullable=False),
        sa.Column("confirmed", sa.Integer(), nullable=False),
        sa.Column("no_shows", sa.Integer(), nullable=False),
        sa.Column("came", sa.Integer(), nullable=False),
        sa.Column("paid_visits", sa.Integer(), nullable=False),
        sa.Column("revenue", sa.Numeric(precision=16, scale=2), nullable=False),
        sa.Column("replied", sa.Integer(), nullable=False),
        sa.Column("replied_in_sla", sa.Integer(), nullable=False),
        sa.Column("sla_due", sa.Integer(), nullable=False),
        sa.Column("breaches", sa.Integer(), nullable=False),
        sa.Column("escalations", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portals.id"],
            name=op.f("fk_kpi_daily_portal_id_portals"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kpi_daily")),
        sa.UniqueConstraint("portal_id", "grain", "dim", "day", "key", name="uq_kpi_daily_key"),
    )
    op.create_index(
        "ix_kpi_daily_trend", "kpi_daily",
        ["portal_id", "grain", "dim", "day", "leads", "bookings", "confirmed", "no_shows"],
    )
    op.create_table(
        "kpi_daily_reply",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("grain", sa.String(length=1), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("manager", sa.String(length=16), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portals.id"],
            name=op.f("fk_kpi_daily_reply_portal_id_portals"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kpi_daily_reply")),
        sa.UniqueConstraint(
            "portal_id", "grain", "day", "manager", "bucket", name="uq_kpi_daily_reply_key"
        ),
    )
    op.create_index(
        "ix_kpi_daily_reply_scan", "kpi_daily_reply",
        ["portal_id", "grain", "manager", "bucket", "day", "n"],
    )
    op.create_table(
        "kpi_daily_state",
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("tz", sa.String(length=64), nullable=False),
        sa.Column("sla_s", sa.Float(), nullable=False),
        sa.Column("built_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portals.id"],
            name=op.f("fk_kpi_daily_state_portal_id_portals"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("portal_id", name=op.f("pk_kpi_daily_state")),
    )
    op.create_index("ix_leads_portal_updated", "leads", ["portal_id", "updated_at"])
    op.create_index("ix_timers_fired", "timers", ["portal_id", "fired_at"])


def downgrade() -> None:
    op.drop_index("ix_timers_fired", table_name="timers")
    op.drop_index("ix_leads_portal_updated", table_name="leads")
    op.drop_table("kpi_daily_state")
    op.drop_index("ix_kpi_daily_reply_scan", table_name="kpi_daily_reply")
    op.drop_table("kpi_daily_reply")
    op.drop_index("ix_kpi_daily_trend", table_name="kpi_daily")
    op.drop_table("kpi_daily")
    op.drop_table("portal_directory")
