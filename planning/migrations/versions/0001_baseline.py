"""The schema as it was before it was versioned: runs, their tables, scenarios, jobs, tokens.

A store made by an earlier wulian already has these tables (made directly, without Alembic);
they are left as they are, with their rows, and only what is missing is created.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _missing(name: str) -> bool:
    return not sa.inspect(op.get_bind()).has_table(name)


def upgrade() -> None:
    if _missing("runs"):
        op.create_table(
            "runs",
            sa.Column("run_id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("created_at", sa.String(32), nullable=False),
            sa.Column("kind", sa.String(32), nullable=False),
            sa.Column("scenario", sa.Text, nullable=False),
            sa.Column("input_digest", sa.String(64), nullable=False, index=True),
            sa.Column("policy_digest", sa.String(64), nullable=False),
            sa.Column("week", sa.String(16), nullable=False),
            sa.Column("centre", sa.String(64), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("info", sa.Text, nullable=False),
        )
    if _missing("run_tables"):
        op.create_table(
            "run_tables",
            sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.run_id"), primary_key=True),
            sa.Column("name", sa.String(32), primary_key=True),
            sa.Column("rows", sa.Integer, nullable=False),
            sa.Column("data", sa.LargeBinary, nullable=False),
        )
    if _missing("scenarios"):
        op.create_table(
            "scenarios",
            sa.Column("digest", sa.String(64), primary_key=True),
            sa.Column("created_at", sa.String(32), nullable=False),
            sa.Column("name", sa.Text, nullable=False),
            sa.Column("format", sa.String(16), nullable=False),
            sa.Column("path", sa.Text, nullable=False),
            sa.Column("counts", sa.Text, nullable=False),
        )
    if _missing("jobs"):
        op.create_table(
            "jobs",
            sa.Column("job_id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("scenario", sa.String(64), nullable=False, index=True),
            sa.Column("quarter", sa.String(16), nullable=False),
            sa.Column("engine", sa.String(16), nullable=False),
            sa.Column("centre", sa.String(64), nullable=False),
            sa.Column("state", sa.String(16), nullable=False, index=True),
            sa.Column("done", sa.Integer, nullable=False),
            sa.Column("total", sa.Integer, nullable=False),
            sa.Column("label", sa.Text, nullable=False),
            sa.Column("attempts", sa.Integer, nullable=False),
            sa.Column("error", sa.Text, nullable=False),
            sa.Column("cancel_requested", sa.Boolean, nullable=False),
            sa.Column("owner_role", sa.String(16), nullable=False),
            sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.run_id"), nullable=True),
            sa.Column("created_at", sa.String(32), nullable=False),
            sa.Column("started_at", sa.String(32), nullable=True),
            sa.Column("updated_at", sa.String(32), nullable=False),
            sa.Column("finished_at", sa.String(32), nullable=True),
        )
    if _missing("api_tokens"):
        op.create_table(
            "api_tokens",
            sa.Column("token_id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("secret_sha256", sa.String(64), nullable=False, unique=True),
            sa.Column("role", sa.String(16), nullable=False),
            sa.Column("centre", sa.String(64), nullable=False),
            sa.Column("label", sa.Text, nullable=False),
            sa.Column("created_at", sa.String(32), nullable=False),
            sa.Column("revoked", sa.Boolean, nullable=False),
        )


def downgrade() -> None:
    for name in ("api_tokens", "jobs", "scenarios", "run_tables", "runs"):
        op.drop_table(name)
