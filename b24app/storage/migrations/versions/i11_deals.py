"""deals: client journeys across lead and deal, CRM mode, deal backfill progress

Revision ID: i11_deals
Revises: 17494ff33532
"""

import sqlalchemy as sa
from alembic import op

from b24app.storage.migrations.ddl import add_columns
from b24app.storage.migrations.ddl import drop_columns
from b24app.storage.migrations.ddl import integer
from b24app.storage.migrations.ddl import string

revision = "i11_deals"
down_revision = "17494ff33532"


def upgrade() -> None:
    add_columns("portals", *string(8, "crm_mode", default="classic"))
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.alter_column("lead_id", existing_type=sa.Integer(), nullable=True)
        for column in [
            *integer("deal_id", "contact_id", null=True), *string(8, "entity_type", default="lead"),
            *integer("category_id", null=True), *string(64, "deal_stage_id", default=""),
        ]:
            batch_op.add_column(column)
        batch_op.create_index(batch_op.f("ix_leads_deal_id"), ["deal_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_leads_contact_id"), ["contact_id"], unique=False)
        batch_op.create_unique_constraint("uq_leads_portal_deal", ["portal_id", "deal_id"])
    add_columns("backfill_state", *integer("last_deal_id", "last_deal_history_id", default="0"))


def downgrade() -> None:
    drop_columns("backfill_state", "last_deal_history_id", "last_deal_id")
    op.execute("DELETE FROM leads WHERE lead_id IS NULL")
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_constraint("uq_leads_portal_deal", type_="unique")
        batch_op.drop_index(batch_op.f("ix_leads_contact_id"))
        batch_op.drop_index(batch_op.f("ix_leads_deal_id"))
        for column in ("deal_stage_id", "category_id", "entity_type", "contact_id", "deal_id"):
            batch_op.drop_column(column)
        batch_op.alter_column("lead_id", existing_type=sa.Integer(), nullable=False)
    drop_columns("portals", "crm_mode")
