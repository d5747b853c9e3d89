"""deals: client journeys across lead and deal, CRM mode, deal backfill progress

Revision ID: i11_deals
Revises: 17494ff33532
"""

from alembic import op
import sqlalchemy as sa


revision = "i11_deals"
down_revision = "17494ff33532"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("portals", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("crm_mode", sa.String(length=8), nullable=False, server_default="classic")
        )
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.alter_column("lead_id", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column("deal_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("contact_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("entity_type", sa.String(length=8), nullable=False, server_default="lead")
        )
        batch_op.add_column(sa.Column("category_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("deal_stage_id", sa.String(length=64), nullable=False, server_default="")
        )
        batch_op.create_index(batch_op.f("ix_leads_deal_id"), ["deal_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_leads_contact_id"), ["contact_id"], unique=False)
        batch_op.create_unique_constraint("uq_leads_portal_deal", ["portal_id", "deal_id"])
    with op.batch_alter_table("backfill_state", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("last_deal_id", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("last_deal_history_id", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("backfill_state", schema=None) as batch_op:
        batch_op.drop_column("last_deal_history_id")
        batch_op.drop_column("last_deal_id")
    op.execute("DELETE FROM leads WHERE lead_id IS NULL")
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_constraint("uq_leads_portal_deal", type_="unique")
        batch_op.drop_index(batch_op.f("ix_leads_contact_id"))
        batch_op.drop_index(batch_op.f("ix_leads_deal_id"))
        batch_op.drop_column("deal_stage_id")
        batch_op.drop_column("category_id")
        batch_op.drop_column("entity_type")
        batch_op.drop_column("contact_id")
        batch_op.drop_column("deal_id")
        batch_op.alter_column("lead_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("portals", schema=None) as batch_op:
        batch_op.drop_column("crm_mode")
