"""consent_records: a client's advertising consent and opt-out («СТОП»), append-only

Revision ID: hc_consent_records
Revises: wt21_rollup_indexes
"""

from alembic import op
import sqlalchemy as sa


revision = "hc_consent_records"
down_revision = "coexist_booking_sends"  # chained at merge: hj_journeys → coexist_booking_sends → hc_consent_records
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consent_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("chat_id", sa.Integer(), nullable=True),
        sa.Column("chat_user_id", sa.Integer(), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("recorded_by", sa.Integer(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portals.id"],
            name=op.f("fk_consent_records_portal_id_portals"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_records")),
    )
    with op.batch_alter_table("consent_records", schema=None) as batch_op:
        # the identifier first: a look-up ORs them (b24app/consent/contact.py)
        batch_op.create_index("ix_consent_records_contact", ["contact_id", "portal_id"])
        batch_op.create_index("ix_consent_records_chat", ["chat_id", "portal_id"])
        batch_op.create_index("ix_consent_records_chat_user", ["chat_user_id", "portal_id"])
        batch_op.create_index("ix_consent_records_phone", ["phone", "portal_id"])


def downgrade() -> None:
    op.drop_table("consent_records")
