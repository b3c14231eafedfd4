"""Early warning and notifications: alerts with their state, webhooks and what was sent.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.String(200), primary_key=True),
        sa.Column("rule", sa.String(32), nullable=False, index=True),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("centre", sa.String(64), nullable=False, index=True),
        sa.Column("subject_kind", sa.String(16), nullable=False),
        sa.Column("subject_id", sa.String(64), nullable=False),
        sa.Column("since", sa.String(8), nullable=False),
        sa.Column("last_week", sa.String(8), nullable=False),
        sa.Column("numbers", sa.Text, nullable=False),
        sa.Column("state", sa.String(14), nullable=False, index=True),
        sa.Column("ack_by", sa.Text, nullable=False),
        sa.Column("ack_at", sa.String(32), nullable=False),
        sa.Column("ack_note", sa.Text, nullable=False),
        sa.Column("resolved_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "webhooks",
        sa.Column("webhook_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("target_kind", sa.String(16), nullable=False),
        sa.Column("target_id", sa.String(64), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "deliveries",
        sa.Column("delivery_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("webhook_id", sa.Integer, nullable=False, index=True),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("status", sa.Integer, nullable=True),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("sent_at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    for name in ("deliveries", "webhooks", "alerts"):
        op.drop_table(name)
