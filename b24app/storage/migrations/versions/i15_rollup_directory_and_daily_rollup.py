"""portal directory (names of sources, statuses, users) and the daily KPI roll-up

Revision ID: i15_rollup
Revises: i11_deals
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

from b24app.storage.migrations.ddl import boolean
from b24app.storage.migrations.ddl import drop_table
from b24app.storage.migrations.ddl import integer
from b24app.storage.migrations.ddl import numeric
from b24app.storage.migrations.ddl import portal_table
from b24app.storage.migrations.ddl import string
from b24app.storage.migrations.ddl import timestamp

revision = "i15_rollup"
down_revision = "i12_appointments"  # re-chained at merge: issue11 → issue12 → issue15


def _grain_day() -> list[sa.Column[Any]]:
    """The roll-ups' period: its grain (day or month) and the day it starts."""
    return [*string(1, "grain"), sa.Column("day", sa.Date(), nullable=False)]


def upgrade() -> None:
    portal_table(
        "portal_directory", *string(16, "kind"), *string(64, "code"), *string(255, "name"),
        *integer("sort"), *boolean("active"), *timestamp("refreshed_at"),
        unique=("uq_portal_directory_key", ["portal_id", "kind", "code"]),
    )
    portal_table(
        "kpi_daily", *_grain_day(), *string(16, "dim"), *string(255, "key"),
        *integer("leads", "bookings", "confirmed", "no_shows", "came", "paid_visits"),
        *numeric(16, 2, "revenue"),
        *integer("replied", "replied_in_sla", "sla_due", "breaches", "escalations"),
        unique=("uq_kpi_daily_key", ["portal_id", "grain", "dim", "day", "key"]),
        indexes={"ix_kpi_daily_trend": ["portal_id", "grain", "dim", "day", "leads", "bookings",
                                        "confirmed", "no_shows"]},
    )
    portal_table(
        "kpi_daily_reply", *_grain_day(), *string(16, "manager"), *integer("bucket", "n"),
        unique=("uq_kpi_daily_reply_key", ["portal_id", "grain", "day", "manager", "bucket"]),
        indexes={
            "ix_kpi_daily_reply_scan": ["portal_id", "grain", "manager", "bucket", "day", "n"]
        },
    )
    portal_table(
        "kpi_daily_state", *string(64, "tz"), sa.Column("sla_s", sa.Float(), nullable=False),
        *timestamp("built_at"),
        key="portal_id",
    )
    op.create_index("ix_leads_portal_updated", "leads", ["portal_id", "updated_at"])
    op.create_index("ix_timers_fired", "timers", ["portal_id", "fired_at"])


def downgrade() -> None:
    op.drop_index("ix_timers_fired", table_name="timers")
    op.drop_index("ix_leads_portal_updated", table_name="leads")
    drop_table("kpi_daily_state")
    drop_table("kpi_daily_reply", "ix_kpi_daily_reply_scan")
    drop_table("kpi_daily", "ix_kpi_daily_trend")
    drop_table("portal_directory")
