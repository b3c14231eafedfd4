"""The needs closed, by when: a week's close finds the needs of its snapshot closed since it
opened (withdrawn) among those closed in that time, not among every need ever closed (a grown
register holds a million; planning/cycle.py, close_week).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

CLOSED = "state = 'closed'"  # (a literal: a partial index serves only queries that name it)


def upgrade() -> None:
    # Skipped when made already (SQLite keeps an index made even when the upgrade stops after
    # it; see revision 0005). Partial: needs waiting change often and are not in it; a need is
    # added once, when it closes, at the end of the index (its time is the latest). The state
    # leads so that SQLite prefers it to ix_need_states_waiting for a state and a time.
    indexes = {i["name"] for i in sa.inspect(op.get_bind()).get_indexes("need_states")}
    if "ix_need_states_closed" not in indexes:
        op.create_index("ix_need_states_closed", "need_states", ["state", "updated_at"],
                        sqlite_where=sa.text(CLOSED), postgresql_where=sa.text(CLOSED))


def downgrade() -> None:
    op.drop_index("ix_need_states_closed", "need_states")
