"""A task's answer and its settling at the close rewrite its row in place: the tasks' status
is no longer indexed, and on PostgreSQL the tasks' pages keep room for a second version of
their rows (a fillfactor). A week's close sets every unanswered task (a city's 259,000) to not
delivered; with an index on the status, each row's new version went into all seven of the
tasks' indexes (docs/benchmarks.md, session 16).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

#: Percent of a tasks page that inserts (the open's copy) fill; the rest is kept for the rows'
#: next versions, so that an update which changes no indexed column is "HOT" (heap-only
#: tuple: written beside the old version, no index entry made). Every task of a week is
#: updated at least once (answered, or settled at the close), a version about as long as the
#: first: half a page. On a city week's close, 94 % of the 259,290 settled tasks HOT, the
#: update 7.2 → 1.6 s; 75 % left 31 % HOT, 5.6 s (docs/benchmarks.md, session 16). The
#: tasks take twice the pages (a city week 66 → 126 MB); the open's copy 3.5 → 3.9 s.
TASKS_FILLFACTOR = 50


def upgrade() -> None:
    # Skipped when gone already (SQLite drops an index at once, outside the upgrade's
    # transaction: an upgrade stopped half way runs again; see revision 0005).
    indexes = {i["name"] for i in sa.inspect(op.get_bind()).get_indexes("tasks")}
    if "ix_tasks_status" in indexes:
        op.drop_index("ix_tasks_status", "tasks")
    if op.get_bind().dialect.name == "postgresql":
        # Only pages written from now on keep the room; the weeks already closed are not
        # updated again and are not rewritten.
        op.execute(f"ALTER TABLE tasks SET (fillfactor = {TASKS_FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE tasks RESET (fillfactor)")
    op.create_index("ix_tasks_status", "tasks", ["status"])
