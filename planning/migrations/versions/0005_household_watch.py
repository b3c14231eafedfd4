"""The household watch: per household its station, last two colours and last visit, kept as the
register changes (planning/register.py, WATCH) for the alerts' rules; and the waiting needs'
index holding what those rules read of them.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Each step is skipped when done already: SQLite commits a table's or an index's change at
    # once, outside the upgrade's transaction, so an upgrade stopped half way (killed, out of
    # memory in the rebuild) is run again from where it stopped.
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    if not inspector.has_table("household_watch"):
        op.create_table(
            "household_watch",
            sa.Column("household_id", sa.String(64), primary_key=True),
            sa.Column("station_id", sa.String(64), nullable=False),
            sa.Column("tier", sa.String(8), nullable=False),
            sa.Column("tier_before", sa.String(8), nullable=False),
            sa.Column("assessed_on", sa.String(10), nullable=False),
            sa.Column("version", sa.Integer, nullable=False),
            sa.Column("last_visit", sa.String(8), nullable=False),
            sqlite_with_rowid=False,  # SQLite: a household found in its key's B-tree, not two
        )
    # The rules over waiting needs (planning/alerts.py) read their state, week raised,
    # household and service from this index alone; it serves every lookup by state as before.
    indexes = {i["name"] for i in inspector.get_indexes("need_states")}
    if "ix_need_states_state" in indexes:
        op.drop_index("ix_need_states_state", "need_states")
    if "ix_need_states_waiting" not in indexes:
        op.create_index("ix_need_states_waiting", "need_states",
                        ["state", "week_raised", "household_id", "service_id"])
    # A register made before this revision: its households watched from what it holds (once),
    # written to the columns of this revision (a later one may add its own).
    from wulian.planning.db import bulk_insert
    from wulian.planning.register import watch_from_scratch

    columns = ["household_id", "station_id", "tier", "tier_before", "assessed_on", "version",
               "last_visit"]
    watch = sa.table("household_watch", *(sa.column(c) for c in columns))
    bind.execute(watch.delete())
    bulk_insert(bind, watch, watch_from_scratch(bind)[columns].to_dict("records"))


def downgrade() -> None:
    op.drop_index("ix_need_states_waiting", "need_states")
    op.create_index("ix_need_states_state", "need_states", ["state"])
    op.drop_table("household_watch")
