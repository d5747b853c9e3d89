"""roll-up indexes that match a period's day ranges

Revision ID: wt21_rollup_indexes
Revises: wt22_client_name
Create Date: 2026-11-28 04:45:00
"""

from alembic import op
import sqlalchemy as sa


revision = "wt21_rollup_indexes"
down_revision = "wt22_client_name"


def upgrade() -> None:
    # The dashboard sums day ranges (month rows for whole months, day rows for the edges):
    # the day right after (portal, grain) lets both tables answer by range scans.
    op.create_index("ix_kpi_daily_period", "kpi_daily", ["portal_id", "grain", "day"])
    op.drop_index("ix_kpi_daily_reply_scan", table_name="kpi_daily_reply")
    op.create_index(
        "ix_kpi_daily_reply_period",
        "kpi_daily_reply",
        ["portal_id", "grain", "day", "manager", "bucket", "n"],
    )
    # Builds before this one could keep a day's "SLA due" counts as of its last rebuild (a
    # lead not yet due then): forget them; cron rebuilds each portal within minutes, and the
    # dashboard reads the leads meanwhile.
    op.execute(sa.text("DELETE FROM kpi_daily_state"))


def downgrade() -> None:
    op.drop_index("ix_kpi_daily_reply_period", table_name="kpi_daily_reply")
    op.create_index(
        "ix_kpi_daily_reply_scan",
        "kpi_daily_reply",
        ["portal_id", "grain", "manager", "bucket", "day", "n"],
    )
    op.drop_index("ix_kpi_daily_period", table_name="kpi_daily")
