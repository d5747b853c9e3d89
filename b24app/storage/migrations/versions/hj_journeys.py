"""journeys: the tables say what they hold (issue 20, "one journey model")

``leads`` -> ``journeys``, ``lead_stage_changes`` -> ``journey_stage_changes`` (their
constraints and indexes follow), and the columns that hold a journey key (the lead id, or
minus the deal id: b24app/leads/journeys.py) are called ``journey_key``:
``journey_stage_changes``, ``timers`` and ``robot_calls``. ``journeys.lead_id``,
``appointments.lead_id`` and ``assistant_dialogs.lead_id`` are CRM lead ids and keep their name.

Only names change: every row, id and key stays as it was. On PostgreSQL the renames are
catalogue updates (no table or index is rebuilt). SQLite renames its tables and columns in
place, rebuilds the journeys' indexes and copies ``journeys`` and ``journey_stage_changes``
once to rename their unique constraints (batch mode, foreign keys off: migrations/env.py);
there the primary and foreign keys keep their old names, which nothing compares or reads.

Revision ID: hj_journeys
Revises: wt21_rollup_indexes
"""

from __future__ import annotations

from alembic import op

revision = "hj_journeys"
down_revision = "wt21_rollup_indexes"

# (old name, new name) of each table and the column names its key had and has.
TABLES = (("leads", "journeys"), ("lead_stage_changes", "journey_stage_changes"))
KEY_COLUMNS = (("lead_stage_changes", "journey_stage_changes"), ("timers", "timers"),
               ("robot_calls", "robot_calls"))  # fmt: skip
# Indexes of the journeys table: old name, new name, columns.
INDEXES = (
    ("ix_leads_portal_created", "ix_journeys_portal_created", ["portal_id", "created_at"]),
    ("ix_leads_portal_updated", "ix_journeys_portal_updated", ["portal_id", "updated_at"]),
    ("ix_leads_deal_id", "ix_journeys_deal_id", ["deal_id"]),
    ("ix_leads_contact_id", "ix_journeys_contact_id", ["contact_id"]),
    (
        "ix_leads_kpi",
        "ix_journeys_kpi",
        ["portal_id", "created_at", "deleted_at", "assigned_by_id", "source_id", "channel",
         "is_ai", "utm_campaign", "first_reply_at", "booking_at", "confirmed_at", "came_at",
         "no_show_at", "opportunity"],
    ),  # fmt: skip
)
# Unique constraints: table (new name), old name, new name, columns (new names).
UNIQUES = (
    ("journeys", "uq_leads_portal_lead", "uq_journeys_portal_lead", ["portal_id", "lead_id"]),
    ("journeys", "uq_leads_portal_deal", "uq_journeys_portal_deal", ["portal_id", "deal_id"]),
    (
        "journey_stage_changes",
        "uq_lead_stage_changes_move",
        "uq_journey_stage_changes_move",
        ["portal_id", "journey_key", "status_id", "changed_at"],
    ),
)
# Other constraints whose names carry a table name (PostgreSQL renames them; SQLite's copy
# of the table takes the model's names).
OTHER_CONSTRAINTS = (
    ("journeys", "pk_leads", "pk_journeys"),
    ("journeys", "fk_leads_portal_id_portals", "fk_journeys_portal_id_portals"),
    ("journey_stage_changes", "pk_lead_stage_changes", "pk_journey_stage_changes"),
    (
        "journey_stage_changes",
        "fk_lead_stage_changes_portal_id_portals",
        "fk_journey_stage_changes_portal_id_portals",
    ),
    ("appointments", "fk_appointments_journey_id_leads", "fk_appointments_journey_id_journeys"),
)


def upgrade() -> None:
    for old, new in TABLES:
        op.rename_table(old, new)
    for _, table in KEY_COLUMNS:
        with op.batch_alter_table(table) as batch_op:
            batch_op.alter_column("lead_id", new_column_name="journey_key")
    _rename_names(forward=True)


def downgrade() -> None:
    _rename_names(forward=False)
    for _, table in KEY_COLUMNS:
        with op.batch_alter_table(table) as batch_op:
            batch_op.alter_column("journey_key", new_column_name="lead_id")
    for old, new in TABLES:
        op.rename_table(new, old)


def _rename_names(*, forward: bool) -> None:
    """The constraints' and indexes' names, from old to new (``forward``) or back."""
    if op.get_bind().dialect.name == "postgresql":
        for old, new, _ in INDEXES:
            a, b = (old, new) if forward else (new, old)
            op.execute(f"ALTER INDEX {a} RENAME TO {b}")
        for table, old, new, _ in UNIQUES:
            a, b = (old, new) if forward else (new, old)
            op.execute(f"ALTER TABLE {table} RENAME CONSTRAINT {a} TO {b}")
        for table, old, new in OTHER_CONSTRAINTS:
            a, b = (old, new) if forward else (new, old)
            op.execute(f"ALTER TABLE {table} RENAME CONSTRAINT {a} TO {b}")
        return
    for old, new, columns in INDEXES:
        a, b = (old, new) if forward else (new, old)
        op.drop_index(a, table_name="journeys")
        op.create_index(b, "journeys", columns)
    for table in ("journeys", "journey_stage_changes"):
        with op.batch_alter_table(table, recreate="always") as batch_op:
            for owner, old, new, columns in UNIQUES:
                if owner != table:
                    continue
                a, b = (old, new) if forward else (new, old)
                batch_op.drop_constraint(a, type_="unique")
                batch_op.create_unique_constraint(b, columns)
