"""The run store: every run recorded whole, with its outputs and provenance.

A SQLite file by default; any SQLAlchemy URL (``postgresql+psycopg://…``) for a shared store.
Output tables are kept as Parquet bytes, so a stored run comes back with its exact types. A run
is written in one transaction: it is recorded whole or not at all, and a failed write leaves
every earlier run as it was.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

DEFAULT_URL = "sqlite:///runs/wulian.sqlite"

_meta = sa.MetaData()
RUNS = sa.Table(
    "runs", _meta,
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
RUN_TABLES = sa.Table(
    "run_tables", _meta,
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.run_id"), primary_key=True),
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
)


def store_url(url: str | None = None) -> str:
    """The store to use: the argument, else ``$WULIAN_STORE``, else ``runs/wulian.sqlite``."""
    return url or os.environ.get("WULIAN_STORE") or DEFAULT_URL


@dataclass(frozen=True)
class StoredRun:
    run_id: int
    info: dict
    tables: dict[str, pd.DataFrame]


class RunStore:
    """Runs recorded in a database (SQLite file by default)."""

    def __init__(self, url: str | None = None):
        self.url = store_url(url)
        if self.url.startswith("sqlite:///"):
            Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine = sa.create_engine(self.url)
        _meta.create_all(self.engine)

    def save(self, info: dict, tables: dict[str, pd.DataFrame], *, kind: str = "allocate",
             scenario: str = "") -> int:
        """Record a run whole (one transaction) and return its id."""
        blobs = {}
        for name, frame in tables.items():
            buffer = io.BytesIO()
            frame.to_parquet(buffer, index=False)
            blobs[name] = (len(frame), buffer.getvalue())
        params = info.get("parameters", {})
        with self.engine.begin() as conn:
            run_id = conn.execute(RUNS.insert().values(
                created_at=datetime.now(UTC).isoformat(timespec="seconds"), kind=kind,
                scenario=scenario, input_digest=info.get("input_digest", ""),
                policy_digest=info.get("policy", {}).get("digest", ""),
                week=params.get("week") or "", centre=params.get("centre") or "",
                status=info.get("status", ""),
                info=json.dumps(info, ensure_ascii=False, sort_keys=True),
            )).inserted_primary_key[0]
            conn.execute(RUN_TABLES.insert(), [
                {"run_id": run_id, "name": name, "rows": rows, "data": data}
                for name, (rows, data) in blobs.items()
            ])
        return int(run_id)

    def list(self) -> pd.DataFrame:
        """Every run, newest first: id, time, kind, scenario, digests, week, centre, status."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(RUNS).order_by(RUNS.c.run_id.desc())).mappings().all()
        frame = pd.DataFrame([dict(r) for r in rows],
                             columns=[c.name for c in RUNS.columns])
        return frame.drop(columns=["info"])

    def load(self, run_id: int) -> StoredRun:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(RUNS).where(RUNS.c.run_id == run_id)).mappings().first()
            if row is None:
                raise KeyError(f"没有运行 {run_id} / no run {run_id} in {self.url}")
            parts = conn.execute(sa.select(RUN_TABLES).where(RUN_TABLES.c.run_id == run_id))
            tables = {p.name: pd.read_parquet(io.BytesIO(p.data)) for p in parts}
        return StoredRun(run_id=run_id, info=json.loads(row["info"]), tables=tables)

    def latest(self, input_digest: str, *, before: int | None = None,
               kind: str = "allocate") -> StoredRun | None:
        """The newest run on the same input (optionally older than run ``before``)."""
        query = sa.select(RUNS.c.run_id).where(RUNS.c.input_digest == input_digest,
                                               RUNS.c.kind == kind)
        if before is not None:
            query = query.where(RUNS.c.run_id < before)
        with self.engine.connect() as conn:
            run_id = conn.execute(query.order_by(RUNS.c.run_id.desc()).limit(1)).scalar()
        return None if run_id is None else self.load(run_id)

    def previous(self, run_id: int) -> StoredRun | None:
        """The run made before ``run_id`` for the same week and centre (any input)."""
        with self.engine.connect() as conn:
            this = conn.execute(sa.select(RUNS).where(RUNS.c.run_id == run_id)).mappings().first()
            if this is None:
                raise KeyError(f"no run {run_id}")
            earlier = conn.execute(
                sa.select(RUNS.c.run_id).where(RUNS.c.run_id < run_id,
                                               RUNS.c.week == this["week"],
                                               RUNS.c.centre == this["centre"],
                                               RUNS.c.kind == this["kind"])
                .order_by(RUNS.c.run_id.desc()).limit(1)).scalar()
        return None if earlier is None else self.load(earlier)


def diff_runs(old: StoredRun, new: StoredRun) -> pd.DataFrame:
    """Households whose service changed from ``old`` to ``new``, and why.

    One row per household that gained or lost served units: its fill rate before and after,
    the change, and for a loss the unmet reasons in the new run.
    """
    before = old.tables["plans"].set_index("household_id")
    after = new.tables["plans"].set_index("household_id")
    # A run for one centre's subtree speaks only for the households in it.
    subtree = bool(new.info.get("parameters", {}).get("centre"))
    index = after.index if subtree else before.index.union(after.index)
    fill_before = before["fill_rate"].reindex(index)
    fill_after = after["fill_rate"].reindex(index)
    change = fill_after.fillna(0) - fill_before.fillna(0)
    changed = (change.abs() > 1e-9) | fill_before.isna() | fill_after.isna()
    out = pd.DataFrame({
        "tier": after["tier"].reindex(index).fillna(before["tier"].reindex(index)),
        "fill_before": fill_before, "fill_after": fill_after, "change": change,
        "package_before": before["package"].reindex(index).fillna(""),
        "package_after": after["package"].reindex(index).fillna(""),
        "why": after["unmet"].reindex(index).fillna(""),
    })[changed]
    out["direction"] = pd.cut(out["change"], [-2, -1e-9, 1e-9, 2],
                              labels=["lost", "same", "gained"]).astype(str)
    out.loc[fill_before.reindex(out.index).isna(), "direction"] = "new"
    out.loc[fill_after.reindex(out.index).isna(), "direction"] = "gone"
    return out.reset_index().sort_values(["change", "household_id"]).reset_index(drop=True)
