"""The register and the weekly cycle: rows of the contract's tables, assessments, needs' life
cycle, weeks, tasks, visit results, the audit trail; tokens fenced to a provider.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "register_rows",
        sa.Column("tbl", sa.String(16), primary_key=True),
        sa.Column("row_key", sa.String(160), primary_key=True),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("effective_from", sa.String(10), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "assessments",
        sa.Column("assessment_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("household_id", sa.String(64), nullable=False, index=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("assessed_on", sa.String(10), nullable=False),
        sa.Column("assessor", sa.Text, nullable=False),
        sa.Column("discovered_by", sa.String(16), nullable=False),
        sa.Column("indicators", sa.Text, nullable=False),
        sa.Column("categories", sa.Text, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("tier_policy", sa.String(8), nullable=False),
        sa.Column("tier_override", sa.String(8), nullable=False),
        sa.Column("tier", sa.String(8), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.UniqueConstraint("household_id", "version"),
    )
    op.create_table(
        "need_states",
        sa.Column("need_id", sa.String(64), primary_key=True),
        sa.Column("household_id", sa.String(64), nullable=False, index=True),
        sa.Column("service_id", sa.String(64), nullable=False),
        sa.Column("quantity", sa.Float, nullable=False),
        sa.Column("remaining", sa.Float, nullable=False),
        sa.Column("urgency", sa.Integer, nullable=False),
        sa.Column("week_raised", sa.String(8), nullable=False),
        sa.Column("state", sa.String(10), nullable=False, index=True),
        sa.Column("age", sa.Integer, nullable=False),
        sa.Column("close_reason", sa.String(10), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "weeks",
        sa.Column("week", sa.String(8), primary_key=True),
        sa.Column("centre", sa.String(64), primary_key=True),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("run_id", sa.Integer, nullable=True),
        sa.Column("match_run_id", sa.Integer, nullable=True),
        sa.Column("opened_at", sa.String(32), nullable=False),
        sa.Column("closed_at", sa.String(32), nullable=True),
        sa.Column("actor", sa.Text, nullable=False),
    )
    op.create_table(
        "tasks",
        sa.Column("task_id", sa.String(64), primary_key=True),
        sa.Column("week", sa.String(8), nullable=False, index=True),
        sa.Column("centre", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("need_id", sa.String(64), nullable=False, index=True),
        sa.Column("household_id", sa.String(64), nullable=False),
        sa.Column("service_id", sa.String(64), nullable=False),
        sa.Column("provider_id", sa.String(64), nullable=False, index=True),
        sa.Column("linkage", sa.String(16), nullable=False),
        sa.Column("offer_id", sa.String(64), nullable=False),
        sa.Column("volunteer_id", sa.String(64), nullable=False),
        sa.Column("fund_id", sa.String(64), nullable=False),
        sa.Column("street_id", sa.String(64), nullable=False, index=True),
        sa.Column("station_id", sa.String(64), nullable=False),
        sa.Column("tier", sa.String(8), nullable=False),
        sa.Column("slot", sa.String(8), nullable=False),
        sa.Column("units", sa.Float, nullable=False),
        sa.Column("hours", sa.Float, nullable=False),
        sa.Column("cost", sa.Float, nullable=False),
        sa.Column("status", sa.String(14), nullable=False, index=True),
        sa.Column("units_delivered", sa.Float, nullable=False),
        sa.Column("answered_on", sa.String(10), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "visit_results",
        sa.Column("task_id", sa.String(64), primary_key=True),
        sa.Column("household_id", sa.String(64), nullable=False, index=True),
        sa.Column("outcome", sa.String(8), nullable=False),
        sa.Column("visited_on", sa.String(10), nullable=False),
        sa.Column("indicators", sa.Text, nullable=False),
        sa.Column("new_needs", sa.Text, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("assessment_id", sa.Integer, nullable=True),
        sa.Column("recorded_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("event_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("via", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False, index=True),
        sa.Column("subject", sa.String(200), nullable=False, index=True),
        sa.Column("before", sa.Text, nullable=True),
        sa.Column("after", sa.Text, nullable=True),
    )
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("provider_id", sa.String(64), nullable=False,
                                   server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("provider_id")
    for name in ("events", "visit_results", "tasks", "weeks", "need_states", "assessments",
                 "register_rows"):
        op.drop_table(name)
