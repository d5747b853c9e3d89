"""initial schema

Revision ID: 17494ff33532
Revises:
Create Date: 2026-11-23 08:43:39.459801
"""

import sqlalchemy as sa

from b24app.storage.crypto import EncryptedString
from b24app.storage.migrations.ddl import boolean
from b24app.storage.migrations.ddl import create_table
from b24app.storage.migrations.ddl import drop_table
from b24app.storage.migrations.ddl import integer
from b24app.storage.migrations.ddl import json
from b24app.storage.migrations.ddl import numeric
from b24app.storage.migrations.ddl import portal_table
from b24app.storage.migrations.ddl import string
from b24app.storage.migrations.ddl import text
from b24app.storage.migrations.ddl import timestamp

revision = "17494ff33532"
down_revision = None


def upgrade() -> None:
    _portals_and_rest_log()
    portal_table(
        "backfill_state", *integer("last_lead_id", "last_history_id"), *string(16, "phase"),
        *integer("imported"), *timestamp("started_at"), *timestamp("finished_at", null=True),
        key="portal_id",
    )
    portal_table(
        "campaign_costs", *string(255, "utm_campaign"), *string(7, "month"),
        *numeric(14, 2, "cost"),
        unique=("uq_campaign_costs_key", ["portal_id", "utm_campaign", "month"]),
    )
    portal_table(
        "lead_stage_changes", *integer("lead_id"), *string(64, "status_id"),
        *string(16, "stage"), *timestamp("changed_at"), *string(16, "origin"),
        unique=("uq_lead_stage_changes_move", ["portal_id", "lead_id", "status_id", "changed_at"]),
    )
    _leads()
    portal_table(
        "portal_settings", *json("data"), *timestamp("updated_at"),
        *integer("updated_by", null=True),
        key="portal_id",
    )
    portal_table(
        "report_runs", *string(32, "kind", "period"), *integer("recipient_user_id"),
        *timestamp("sent_at"),
        unique=("uq_report_runs", ["portal_id", "kind", "period", "recipient_user_id"]),
    )
    portal_table(
        "robot_calls", *string(64, "token_hash", "code"), *integer("lead_id", null=True),
        *string(16, "state"), *json("return_values"), *text("log_message"),
        sa.Column("request", EncryptedString(length=16384), nullable=True),
        *timestamp("created_at"), *timestamp("sent_at", null=True),
        unique=("uq_robot_calls_token", ["portal_id", "token_hash"]),
    )
    portal_table(
        "timers", *integer("lead_id"), *string(32, "policy"), *string(16, "level"),
        *timestamp("due_at", "started_at"), *string(16, "state"), *string(255, "job_id"),
        *json("payload"), *timestamp("fired_at", null=True),
        *integer("recipient_user_id", null=True), *timestamp("claimed_at", null=True),
        unique=("uq_timers_key", ["portal_id", "lead_id", "policy", "level"]),
        indexes={
            "ix_timers_kpi": ["portal_id", "due_at", "state", "level", "lead_id"],
            "ix_timers_state_due": ["state", "due_at"],
        },
    )


def _portals_and_rest_log() -> None:
    create_table(
        "portals", *integer("id"), *string(64, "member_id"), *string(255, "domain"),
        *string(512, "client_endpoint", "server_endpoint"), *string(1024, "scopes"),
        *string(32, "status"), *string(8, "plan", "lang"), *string(32, "app_version"),
        sa.Column("application_token", EncryptedString(length=512), nullable=True),
        sa.Column("access_token", EncryptedString(length=1024), nullable=True),
        sa.Column("refresh_token", EncryptedString(length=1024), nullable=True),
        *timestamp("token_expires_at", null=True), *integer("token_version"),
        *integer("installer_user_id", null=True),
        *timestamp("installed_at", "install_finished_at", "registered_at", "uninstalled_at",
                   null=True),
        *json("registration"), *timestamp("created_at", "updated_at"),
        unique=("uq_portals_member_id", ["member_id"]),
    )
    create_table(
        "rest_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        *string(64, "member_id"), *string(128, "method"), *text("request"),
        *integer("status_code"), *text("response"), *string(128, "error", null=True),
        *integer("duration_ms"), *timestamp("created_at"),
        indexes={"ix_rest_log_created": ["created_at"], "ix_rest_log_member_id": ["member_id"]},
    )


def _leads() -> None:
    portal_table(
        "leads", *integer("lead_id"), *string(64, "status_id"), *string(16, "stage"),
        *integer("assigned_by_id", null=True), *string(64, "source_id"),
        *string(255, "utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term"),
        *string(16, "channel"), *boolean("is_ai"), *string(64, "ai_channel"),
        *timestamp("ai_tagged_at", null=True), *numeric(14, 2, "opportunity", null=True),
        *string(8, "currency_id"), *timestamp("created_at"),
        *timestamp("first_reply_at", null=True), *string(32, "first_reply_kind", null=True),
        *timestamp("qualified_at", "confirmed_at", "came_at", "no_show_at", "booking_at",
                   "deleted_at", "modified_at", null=True),
        *timestamp("updated_at"),
        unique=("uq_leads_portal_lead", ["portal_id", "lead_id"]),
        indexes={
            "ix_leads_kpi": [
                "portal_id", "created_at", "deleted_at", "assigned_by_id", "source_id",
                "channel", "is_ai", "utm_campaign", "first_reply_at", "booking_at",
                "confirmed_at", "came_at", "no_show_at", "opportunity",
            ],
            "ix_leads_portal_created": ["portal_id", "created_at"],
        },
    )


def downgrade() -> None:
    drop_table("timers", "ix_timers_state_due", "ix_timers_kpi")
    for table in ("robot_calls", "report_runs", "portal_settings"):
        drop_table(table)
    drop_table("leads", "ix_leads_portal_created", "ix_leads_kpi")
    for table in ("lead_stage_changes", "campaign_costs", "backfill_state"):
        drop_table(table)
    drop_table("rest_log", "ix_rest_log_member_id", "ix_rest_log_created")
    drop_table("portals")
