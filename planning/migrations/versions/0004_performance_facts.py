"""Performance facts: a closed week's tasks and shortfalls summed once (planning/performance.py),
and an index on the tasks' station for a coordinator's fenced reads.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Weeks closed before this revision have no facts: they are read from their tasks.
    op.create_table(
        "fact_weeks",
        sa.Column("week", sa.String(8), primary_key=True),
        sa.Column("centre", sa.String(64), primary_key=True),
        sa.Column("made_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "fact_outcomes",
        sa.Column("fact_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("week", sa.String(8), nullable=False, index=True),
        sa.Column("centre", sa.String(64), nullable=False),
        sa.Column("grouping", sa.String(10), nullable=False),
        sa.Column("grp", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("status", sa.String(14), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("days", sa.Integer, nullable=False),
        sa.Column("tasks", sa.Integer, nullable=False),
        sa.Column("units", sa.Float, nullable=False),
        sa.Column("units_delivered", sa.Float, nullable=False),
        sa.Column("cost", sa.Float, nullable=False),
        sa.Column("spent", sa.Float, nullable=False),
    )
    op.create_table(
        "fact_fills",
        sa.Column("fact_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("week", sa.String(8), nullable=False, index=True),
        sa.Column("centre", sa.String(64), nullable=False),
        sa.Column("station_id", sa.String(64), nullable=False),
        sa.Column("tier", sa.String(8), nullable=False),
        sa.Column("needs", sa.Integer, nullable=False),
        sa.Column("planned", sa.Float, nullable=False),
        sa.Column("delivered", sa.Float, nullable=False),
    )
    op.create_table(
        "fact_reached",
        sa.Column("fact_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("week", sa.String(8), nullable=False, index=True),
        sa.Column("centre", sa.String(64), nullable=False),
        sa.Column("tier", sa.String(8), nullable=False),
        sa.Column("household_id", sa.String(64), nullable=False),
    )
    op.create_table(
        "fact_shortfalls",
        sa.Column("fact_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("week", sa.String(8), nullable=False, index=True),
        sa.Column("centre", sa.String(64), nullable=False),
        sa.Column("service_id", sa.String(64), nullable=False),
        sa.Column("street_id", sa.String(64), nullable=False),
        sa.Column("units", sa.Float, nullable=False),
    )
    op.create_index("ix_tasks_station_id", "tasks", ["station_id"])


def downgrade() -> None:
    op.drop_index("ix_tasks_station_id", "tasks")
    for name in ("fact_shortfalls", "fact_reached", "fact_fills", "fact_outcomes",
                 "fact_weeks"):
        op.drop_table(name)
