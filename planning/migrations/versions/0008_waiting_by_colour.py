"""The waiting needs' index by colour before station: the alerts' `unmet` rule reads the
waiting needs of its colours (red and orange by default, a quarter of a city's backlog), not
every waiting need; a fund's subtree and earmark stay ranges of it, colour by colour.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

WAITING = ["state", "tier", "station_id", "service_id", "week_raised", "household_id",
           "need_id"]
BEFORE = ["state", "station_id", "service_id", "week_raised", "tier", "household_id",
          "need_id"]


def _remake(columns: list[str]) -> None:
    # Skipped when made already (SQLite commits an index's change at once, outside the
    # upgrade's transaction: an upgrade stopped half way runs again). Replaced, not added: the
    # close changes every allocated need's state each week, and a second index on the state
    # would double what that writes (docs/benchmarks.md, session 12).
    index = {i["name"]: i["column_names"]
             for i in sa.inspect(op.get_bind()).get_indexes("need_states")}
    if index.get("ix_need_states_waiting") != columns:
        if "ix_need_states_waiting" in index:
            op.drop_index("ix_need_states_waiting", "need_states")
        op.create_index("ix_need_states_waiting", "need_states", columns)


def upgrade() -> None:
    _remake(WAITING)


def downgrade() -> None:
    _remake(BEFORE)
