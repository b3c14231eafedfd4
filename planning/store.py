"""The run store: every run recorded whole, with its outputs and provenance.

A SQLite file by default; any SQLAlchemy URL (``postgresql+psycopg://…``) for a shared store.
Output tables are kept as Parquet bytes, so a stored run comes back with its exact types. A run
is written in one transaction: it is recorded whole or not at all, and a failed write leaves
every earlier run as it was.

The same database holds the batch service's state (``docs/api.md``): the scenarios uploaded to
it (by digest) and its quarterly jobs. A job is claimed with a conditional UPDATE (``state =
'queued'``), so two workers — threads or processes, on SQLite or PostgreSQL — never run the same
job; every later write names the attempt it belongs to, so a worker that lost its claim (the
service restarted and retried the job) can no longer touch it. A finished job's tables are saved
as a run in the same transaction that marks the job done.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import sqlalchemy as sa

from wulian.planning.db import open_engine
from wulian.planning.io import strict_json


def default_store_path() -> Path:
    """Where runs are kept when no store is named: the user's data directory
    (``platformdirs.user_data_path("wulian")`` when platformdirs is installed, else
    ``$XDG_DATA_HOME/wulian``, else ``~/.local/share/wulian``), file ``runs.sqlite`` — never
    the directory the command happens to be run from."""
    try:
        from platformdirs import user_data_path

        folder = Path(user_data_path("wulian"))
    except ImportError:
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        folder = Path(base) / "wulian"
    return folder / "runs.sqlite"


DEFAULT_URL = f"sqlite:///{default_store_path()}"

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


SCENARIOS = sa.Table(
    "scenarios", _meta,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("format", sa.String(16), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("counts", sa.Text, nullable=False),
)
JOB_STATES = ("queued", "running", "done", "failed", "cancelled")
FINAL_STATES = ("done", "failed", "cancelled")
JOBS = sa.Table(
    "jobs", _meta,
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


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Job:
    """One quarterly job as the store holds it (``centre`` is "" for the whole network)."""

    job_id: int
    scenario: str
    quarter: str
    engine: str
    centre: str
    state: str
    done: int
    total: int
    label: str
    attempts: int
    error: str
    cancel_requested: bool
    owner_role: str
    run_id: int | None
    created_at: str
    started_at: str | None
    updated_at: str
    finished_at: str | None

    def as_dict(self) -> dict:
        return asdict(self)


def redact_url(url: str) -> str:
    """A store URL fit to print: its password replaced by ``***``."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:  # not a URL at all: show nothing that might be a secret
        return "<store>"


def store_url(url: str | None = None) -> str:
    """The store to use: the argument, else ``$WULIAN_STORE``, else the user's data directory
    (:func:`default_store_path`)."""
    return url or os.environ.get("WULIAN_STORE") or f"sqlite:///{default_store_path()}"


@dataclass(frozen=True)
class StoredRun:
    run_id: int
    info: dict
    tables: dict[str, pd.DataFrame]


class RunStore:
    """Runs recorded in a database (SQLite file by default)."""

    def __init__(self, url: str | None = None):
        self.url = store_url(url)
        self.engine = open_engine(self.url)  # the schema is Alembic's (planning/db.py)

    def save(self, info: dict, tables: dict[str, pd.DataFrame], *, kind: str = "allocate",
             scenario: str = "") -> int:
        """Record a run whole (one transaction) and return its id."""
        with self.engine.begin() as conn:
            return self.insert_run(conn, info, tables, kind, scenario)

    @staticmethod
    def insert_run(conn: sa.Connection, info: dict, tables: dict[str, pd.DataFrame],
                    kind: str, scenario: str) -> int:
        """A run's row and its tables (none: see :meth:`insert_tables`); returns its id."""
        params = info.get("parameters", {})
        run_id = conn.execute(RUNS.insert().values(
            created_at=datetime.now(UTC).isoformat(timespec="seconds"), kind=kind,
            scenario=scenario, input_digest=info.get("input_digest", ""),
            policy_digest=info.get("policy", {}).get("digest", ""),
            week=params.get("week") or "", centre=params.get("centre") or "",
            status=info.get("status", ""),
            info=strict_json(info, indent=None),  # NaN as null: strict parsers read it back
        )).inserted_primary_key[0]
        RunStore.insert_tables(conn, int(run_id), RunStore.blobs(tables))
        return int(run_id)

    @staticmethod
    def blobs(tables: dict[str, pd.DataFrame]) -> dict[str, tuple[int, bytes]]:
        """Each table as it is stored: its rows and its parquet bytes."""
        blobs = {}
        for name, frame in tables.items():
            buffer = io.BytesIO()
            frame.to_parquet(buffer, index=False)
            blobs[name] = (len(frame), buffer.getvalue())
        return blobs

    @staticmethod
    def insert_tables(conn: sa.Connection, run_id: int,
                      blobs: dict[str, tuple[int, bytes]]) -> None:
        """A run's tables (:meth:`blobs`), when they are ready after its row (a week's open
        writes its tasks meanwhile)."""
        if blobs:
            conn.execute(RUN_TABLES.insert(), [
                {"run_id": run_id, "name": name, "rows": rows, "data": data}
                for name, (rows, data) in blobs.items()
            ])

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
                raise KeyError(f"没有运行 {run_id} / no run {run_id} in {redact_url(self.url)}")
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

    def table(self, run_id: int, name: str) -> pd.DataFrame:
        """One output table of a run (without reading the others).

        Raises
        ------
        KeyError
            When the run has no table ``name``.
        """
        with self.engine.connect() as conn:
            data = conn.execute(sa.select(RUN_TABLES.c.data).where(
                RUN_TABLES.c.run_id == run_id, RUN_TABLES.c.name == name)).scalar()
        if data is None:
            raise KeyError(f"运行 {run_id} 没有表 {name} / run {run_id} has no table {name}")
        return pd.read_parquet(io.BytesIO(data))

    @staticmethod
    def table_in(conn: sa.Connection, run_id: int, name: str,
                 columns: list[str] | None = None) -> pd.DataFrame:
        """One output table of a run (only ``columns`` when given), read in the caller's
        transaction (empty when missing)."""
        data = conn.execute(sa.select(RUN_TABLES.c.data).where(
            RUN_TABLES.c.run_id == run_id, RUN_TABLES.c.name == name)).scalar()
        if data is None:
            return pd.DataFrame()
        if columns is not None:  # those the table has (an empty table may have none)
            have = set(pq.read_schema(io.BytesIO(data)).names)
            columns = [c for c in columns if c in have]
        return pd.read_parquet(io.BytesIO(data), columns=columns)

    def table_names(self, run_id: int) -> list[str]:
        """The names of a run's output tables, in the order they were saved."""
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(RUN_TABLES.c.name).where(
                RUN_TABLES.c.run_id == run_id).order_by(RUN_TABLES.c.name)).scalars())

    # -- scenarios kept by the batch service --------------------------------------------------

    def add_scenario(self, digest: str, *, name: str, fmt: str, path: str,
                     counts: dict[str, int]) -> bool:
        """Register a validated scenario by its digest; ``False`` when it was already there."""
        try:
            with self.engine.begin() as conn:
                conn.execute(SCENARIOS.insert().values(
                    digest=digest, created_at=_now(), name=name, format=fmt, path=path,
                    counts=json.dumps(counts, sort_keys=True)))
        except sa.exc.IntegrityError:
            return False
        return True

    def scenarios(self) -> list[dict]:
        """Every registered scenario, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(SCENARIOS).order_by(SCENARIOS.c.created_at,
                                                              SCENARIOS.c.digest)).mappings()
            return [_scenario_row(r) for r in rows]

    def scenario(self, digest: str) -> dict | None:
        """The scenario whose digest is ``digest`` or starts with it (at least 8 characters,
        and only one scenario may match); ``None`` when there is none."""
        if len(digest) < 8 or not all(c in "0123456789abcdef" for c in digest):
            return None
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(SCENARIOS).where(
                SCENARIOS.c.digest.startswith(digest)).limit(2)).mappings().all()
        return _scenario_row(rows[0]) if len(rows) == 1 else None

    # -- quarterly jobs -----------------------------------------------------------------------

    def submit_job(self, scenario: str, quarter: str, *, engine: str = "local",
                   centre: str | None = None, owner_role: str = "") -> Job:
        """Queue a job and return it."""
        now = _now()
        with self.engine.begin() as conn:
            job_id = conn.execute(JOBS.insert().values(
                scenario=scenario, quarter=quarter, engine=engine, centre=centre or "",
                state="queued", done=0, total=0, label="", attempts=0, error="",
                cancel_requested=False, owner_role=owner_role, run_id=None, created_at=now,
                started_at=None, updated_at=now, finished_at=None,
            )).inserted_primary_key[0]
        return self.job(int(job_id))

    def job(self, job_id: int) -> Job:
        """One job.

        Raises
        ------
        KeyError
            When there is no such job.
        """
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(JOBS).where(JOBS.c.job_id == job_id)).mappings().first()
        if row is None:
            raise KeyError(f"没有任务 {job_id} / no job {job_id}")
        return Job(**dict(row))

    def jobs(self, state: str | None = None) -> list[Job]:
        """Every job (or those in ``state``), newest first."""
        query = sa.select(JOBS).order_by(JOBS.c.job_id.desc())
        if state is not None:
            query = query.where(JOBS.c.state == state)
        with self.engine.connect() as conn:
            return [Job(**dict(r)) for r in conn.execute(query).mappings()]

    def claim_job(self, job_id: int | None = None) -> Job | None:
        """Take a queued job (the oldest, or ``job_id``) for this worker: ``running``, one more
        attempt. Atomic: of several workers claiming the same job, exactly one gets it; the
        others get the next queued job or ``None``."""
        while True:
            if job_id is None:
                with self.engine.connect() as conn:
                    candidate = conn.execute(
                        sa.select(JOBS.c.job_id).where(JOBS.c.state == "queued")
                        .order_by(JOBS.c.job_id).limit(1)).scalar()
                if candidate is None:
                    return None
            else:
                candidate = job_id
            now = _now()
            with self.engine.begin() as conn:
                claimed = conn.execute(
                    JOBS.update().where(JOBS.c.job_id == candidate, JOBS.c.state == "queued")
                    .values(state="running", attempts=JOBS.c.attempts + 1, started_at=now,
                            updated_at=now, done=0, total=0, label="")).rowcount
            if claimed == 1:
                return self.job(candidate)
            if job_id is not None:
                return None

    def _update_attempt(self, job: Job, **values) -> bool:
        """Write to a running job, only while it is still this attempt's."""
        values.setdefault("updated_at", _now())
        with self.engine.begin() as conn:
            return conn.execute(JOBS.update().where(
                JOBS.c.job_id == job.job_id, JOBS.c.state == "running",
                JOBS.c.attempts == job.attempts).values(**values)).rowcount == 1

    def job_progress(self, job: Job, done: int, total: int, label: str) -> bool:
        """Record progress of a running attempt (``False`` once the attempt is no longer its
        job's)."""
        return self._update_attempt(job, done=int(done), total=int(total), label=label[:200])

    def finish_job(self, job: Job, info: dict, tables: dict[str, pd.DataFrame]) -> int | None:
        """Save the job's tables as a run (kind ``quarter``) and mark the job done, in one
        transaction; returns the run id, or ``None`` (nothing saved) when the attempt is no
        longer the job's."""

        class _Lost(Exception):
            pass

        try:
            with self.engine.begin() as conn:
                run_id = self.insert_run(conn, info, tables, "quarter", job.scenario)
                now = _now()
                marked = conn.execute(JOBS.update().where(
                    JOBS.c.job_id == job.job_id, JOBS.c.state == "running",
                    JOBS.c.attempts == job.attempts,
                ).values(state="done", run_id=run_id, finished_at=now,
                         updated_at=now)).rowcount
                if marked != 1:
                    raise _Lost
        except _Lost:
            return None
        return run_id

    def fail_job(self, job: Job, error: str) -> bool:
        """Mark a running attempt failed with its reason."""
        now = _now()
        return self._update_attempt(job, state="failed", error=error[:2000], finished_at=now,
                                    updated_at=now)

    def cancelled_job(self, job: Job) -> bool:
        """Mark a running attempt cancelled (the worker stopped it on request)."""
        now = _now()
        return self._update_attempt(job, state="cancelled", cancel_requested=True,
                                    finished_at=now, updated_at=now)

    def requeue_job(self, job: Job, note: str) -> bool:
        """Put a running attempt back in the queue without counting it (the service is
        stopping in order; the job runs again when it starts)."""
        return self._update_attempt(job, state="queued", attempts=JOBS.c.attempts - 1,
                                    error=note[:2000])

    def cancel_job(self, job_id: int) -> Job:
        """Cancel a job: a queued job is cancelled at once, a running one is asked to stop
        (its worker polls the flag); a finished job is left as it is.

        Raises
        ------
        KeyError
            When there is no such job.
        """
        now = _now()
        with self.engine.begin() as conn:
            conn.execute(JOBS.update().where(JOBS.c.job_id == job_id, JOBS.c.state == "queued")
                         .values(state="cancelled", cancel_requested=True, finished_at=now,
                                 updated_at=now))
        with self.engine.begin() as conn:
            conn.execute(JOBS.update().where(JOBS.c.job_id == job_id, JOBS.c.state == "running")
                         .values(cancel_requested=True))
        return self.job(job_id)

    def cancel_requested(self, job_id: int) -> bool:
        with self.engine.connect() as conn:
            return bool(conn.execute(sa.select(JOBS.c.cancel_requested)
                                     .where(JOBS.c.job_id == job_id)).scalar())

    def recover_jobs(self, max_attempts: int = 2) -> list[Job]:
        """After a restart: every job still ``running`` was interrupted. It goes back to the
        queue when it has had fewer than ``max_attempts`` attempts, and is marked failed with
        the reason otherwise (a job that was asked to stop is marked cancelled). Returns the
        jobs as they are now."""
        with self.engine.connect() as conn:
            stale = [Job(**dict(r)) for r in conn.execute(
                sa.select(JOBS).where(JOBS.c.state == "running")).mappings()]
        for job in stale:
            when = job.updated_at
            if job.cancel_requested:
                self.cancelled_job(job)
            elif job.attempts < max_attempts:
                self._update_attempt(job, state="queued", error=(
                    f"第 {job.attempts} 次运行被中断(服务重启,最后进度 {when}),将重试 / "
                    f"attempt {job.attempts} was interrupted (service restarted, last progress "
                    f"{when}); retrying"))
            else:
                self.fail_job(job, (
                    f"运行 {job.attempts} 次均被中断(最后进度 {when}),不再重试 / interrupted "
                    f"in each of {job.attempts} attempts (last progress {when}); not retried"))
        return [self.job(j.job_id) for j in stale]


def _scenario_row(row) -> dict:
    out = dict(row)
    out["counts"] = json.loads(out["counts"])
    return out


def diff_runs(old: StoredRun, new: StoredRun) -> pd.DataFrame:
    """Households whose service changed from ``old`` to ``new``, and why.

    One row per household that gained or lost served units, or whose package changed at the
    same fill rate (``moved``: 2 hours from one provider to another): its fill rate before and
    after, the change, both packages, and for a loss the unmet reasons in the new run.
    """
    before = old.tables["plans"].set_index("household_id")
    after = new.tables["plans"].set_index("household_id")
    # A run for one centre's subtree speaks only for the households in it.
    subtree = bool(new.info.get("parameters", {}).get("centre"))
    index = after.index if subtree else before.index.union(after.index)
    fill_before = before["fill_rate"].reindex(index)
    fill_after = after["fill_rate"].reindex(index)
    change = fill_after.fillna(0) - fill_before.fillna(0)
    package_before = before["package"].reindex(index).fillna("")
    package_after = after["package"].reindex(index).fillna("")
    moved = package_before != package_after
    changed = (change.abs() > 1e-9) | fill_before.isna() | fill_after.isna() | moved
    out = pd.DataFrame({
        "tier": after["tier"].reindex(index).fillna(before["tier"].reindex(index)),
        "fill_before": fill_before, "fill_after": fill_after, "change": change,
        "package_before": before["package"].reindex(index).fillna(""),
        "package_after": after["package"].reindex(index).fillna(""),
        "why": after["unmet"].reindex(index).fillna(""),
    })[changed]
    out["direction"] = pd.cut(out["change"], [-2, -1e-9, 1e-9, 2],
                              labels=["lost", "same", "gained"]).astype(str)
    out.loc[(out["direction"] == "same") & moved.reindex(out.index), "direction"] = "moved"
    out.loc[fill_before.reindex(out.index).isna(), "direction"] = "new"
    out.loc[fill_after.reindex(out.index).isna(), "direction"] = "gone"
    return out.reset_index().sort_values(["change", "household_id"]).reset_index(drop=True)
