"""Each need carries its household's station and colour (kept with the household watch), and
the waiting needs' index holds them: the alerts' rules over a growing backlog of waiting needs
read the index alone instead of looking up every need's household.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

WAITING = ["state", "station_id", "service_id", "week_raised", "tier", "household_id", "need_id"]


def upgrade() -> None:
    # Each step is skipped when done already (SQLite commits a table's or an index's change at
    # once, outside the upgrade's transaction: an upgrade stopped half way runs again).
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    columns = {c["name"] for c in inspector.get_columns("need_states")}
    for name, length in (("station_id", 64), ("tier", 8)):
        if name not in columns:
            op.add_column("need_states", sa.Column(name, sa.String(length), nullable=False,
                                                   server_default=""))
    # Filled from the watch (the whole table: filling it again gives the same values), by
    # correlated subqueries (SQLite has UPDATE … FROM only from 3.33).
    needs = sa.table("need_states", sa.column("household_id"), sa.column("station_id"),
                     sa.column("tier"))
    watch = sa.table("household_watch", sa.column("household_id"), sa.column("station_id"),
                     sa.column("tier"))
    bind.execute(needs.update().values(**{
        column: sa.func.coalesce(sa.select(watch.c[column]).where(
            watch.c.household_id == needs.c.household_id).scalar_subquery(), "")
        for column in ("station_id", "tier")}))
    # By state, then station and service (a fund's subtree and earmark are ranges of it), then
    # what the rules read: the week raised, the colour, the household and the need.
    index = {i["name"]: i["column_names"] for i in inspector.get_indexes("need_states")}
    if index.get("ix_need_states_waiting") != WAITING:
        if "ix_need_states_waiting" in index:
            op.drop_index("ix_need_states_waiting", "need_states")
        op.create_index("ix_need_states_waiting", "need_states", WAITING)


def downgrade() -> None:
    op.drop_index("ix_need_states_waiting", "need_states")
    op.create_index("ix_need_states_waiting", "need_states",
                    ["state", "week_raised", "household_id", "service_id"])
    op.drop_column("need_states", "tier")
    op.drop_column("need_states", "station_id")
