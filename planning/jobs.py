"""Quarterly jobs that survive restarts, and the scenarios they run on.

- :class:`ScenarioLibrary` keeps uploaded scenarios on disk, one folder per digest, after
  validating them with :func:`planning.scenario.load_scenario` (nothing is kept when there is
  a problem), and registers them in the run store.
- :class:`JobWorker` runs the store's queued jobs in background threads: each claims a job
  atomically (:meth:`RunStore.claim_job`), runs :func:`planning.quarter.plan_quarter` (which
  spreads the centres over a process pool or Ray), records progress, and saves the plan's
  tables with the job in one transaction. Cancellation is a flag the plan polls.

On start the worker first recovers the jobs a previous service left ``running``: each is
retried once (``attempts``) or marked failed with its reason — never silently lost. The
service assumes one worker per store at start-up (recovery treats every running job as
interrupted); several workers may then share the queue safely.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import traceback
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from wulian.contract.problems import Problem, ValidationError, did_you_mean
from wulian.contract.schema import TABLES
from wulian.planning.engines import stop_workers
from wulian.planning.limits import limits
from wulian.planning.scenario import Scenario, load_scenario
from wulian.planning.store import Job, RunStore

log = logging.getLogger("wulian.jobs")

MAX_ATTEMPTS = 2  # the first run and one retry after an interruption
SCENARIO_SUFFIXES = (".csv", ".parquet", ".xlsx", ".xlsm")


class ValidationCrashed(RuntimeError):
    """The worker validating an upload ended without an answer (killed, out of memory, a crash
    in a reader's native code). Said at once, not at the time limit; nothing was kept."""

    def __init__(self) -> None:
        self.zh = "校验进程意外退出,场景未导入;请重试,若再次发生请拆分文件或改用 CSV"
        self.en = ("the process validating the upload ended unexpectedly and nothing was "
                   "kept; try again, and if it happens again split the file or send CSV")
        super().__init__(f"{self.zh} / {self.en}")


class Validator:
    """Reading and validating an upload in a worker process, under a time limit
    (``Limits.validation_seconds``): a file that takes too long is a problem, and the worker is
    ended rather than left working after the client has gone. A worker that dies mid-validation
    is noticed at once (the pool breaks) rather than at the time limit. One upload at a time;
    the worker (spawned, as the plans' pools are) is started on first use and kept.

    ``load`` is what the worker runs on the upload's path (a module-level function: it is
    pickled to the spawned worker); tests give one that crashes."""

    def __init__(self, load: Callable[[Path], Scenario] = load_scenario) -> None:
        self._load = load
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def load(self, target: Path) -> Scenario:
        """The scenario at ``target``, validated in the worker.

        Raises
        ------
        ValidationError
            With every problem found, or ``validation_timeout`` when the limit passed.
        ValidationCrashed
            When the worker died before answering.
        """
        import multiprocessing

        seconds = limits().validation_seconds
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=1, mp_context=multiprocessing.get_context("spawn"))
            try:
                return self._pool.submit(self._load, target).result(timeout=seconds)
            except FutureTimeout:
                self._discard()  # ends the worker mid-validation
                log.warning("upload validation stopped after %.0f s", seconds)
                raise ValidationError([Problem("upload", "validation_timeout", detail={
                    "seconds": f"{seconds:g}"})]) from None
            except BrokenProcessPool:
                # The pool's manager thread saw the worker's process end: the pool is broken
                # for good; the next upload starts a new one.
                self._discard()
                log.error("upload validation: the worker process ended unexpectedly")
                raise ValidationCrashed() from None

    def _discard(self) -> None:
        """Stop the worker now and forget the pool (the caller holds the lock)."""
        if self._pool is not None:
            stop_workers(self._pool)
            # No cancel_futures: the one task is the one that was running (cancelling it as
            # the broken pool fails it races in CPython 3.11, see planning/engines.py).
            self._pool.shutdown(wait=True)
            self._pool = None

    def close(self) -> None:
        with self._lock:
            self._discard()


class ScenarioLibrary:
    """Validated scenarios kept under ``root/<digest>/``, registered in ``store``."""

    def __init__(self, root: str | Path, store: RunStore, *, cache: int = 4):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.store = store
        self._cache: OrderedDict[str, Scenario] = OrderedDict()
        self._size = cache
        self._lock = threading.Lock()
        self.validator = Validator()

    def add(self, files: Mapping[str, bytes] | Sequence[tuple[str, bytes]], name: str = ""
            ) -> tuple[Scenario, bool]:
        """Validate uploaded files — one folder's CSV or Parquet files, or one XLSX workbook —
        and keep them by digest. ``files`` as (name, bytes) pairs keeps two files of the same
        name apart (both are refused).

        Returns
        -------
        (Scenario, bool)
            The scenario and whether it is new (``False``: the same tables were already kept).

        Raises
        ------
        ValidationError
            With every problem found; nothing is kept.
        """
        incoming = self.root / ".incoming" / uuid.uuid4().hex
        incoming.mkdir(parents=True)
        try:
            target, problems = self._write(incoming, files)
            if problems:
                raise ValidationError(problems)
            scenario = self.validator.load(target)
            final = self.root / scenario.digest
            if not final.exists():
                incoming.rename(final)
            path = final / target.name if target.is_file() else final
            counts = {t: int(len(f)) for t, f in scenario.tables.items()}
            fmt = "xlsx" if target.is_file() else ("parquet" if any(
                p.suffix == ".parquet" for p in final.iterdir()) else "csv")
            created = self.store.add_scenario(scenario.digest, name=name or scenario.digest[:12],
                                              fmt=fmt, path=str(path), counts=counts)
            return scenario, created
        finally:
            shutil.rmtree(incoming, ignore_errors=True)

    @staticmethod
    def _write(folder: Path, files: Mapping[str, bytes] | Sequence[tuple[str, bytes]]
               ) -> tuple[Path, list[Problem]]:
        pairs = list(files.items()) if isinstance(files, Mapping) else list(files)
        most = limits().max_files
        if len(pairs) > most:
            return folder, [Problem("upload", "too_many_files", detail={
                "files": str(len(pairs)), "limit": str(most)})]
        problems = []
        names: dict[str, bytes] = {}
        # Every file is one table: two files of one table (the same name twice, or CSV and
        # Parquet) and a file that names no table are refused, not silently dropped.
        by_table: dict[str, list[str]] = {}
        for raw_name, data in pairs:
            name = Path(raw_name.replace("\\", "/")).name.strip()
            suffix = Path(name).suffix.lower()
            if not name or name.startswith(".") or suffix not in SCENARIO_SUFFIXES:
                problems.append(Problem("upload", "unreadable_file", value=name or raw_name,
                                        detail={"reason_zh": "需要 .csv、.parquet 或 .xlsx 文件",
                                                "reason_en": "expected .csv, .parquet or "
                                                             ".xlsx"}))
                continue
            names[name] = data
            if suffix in (".xlsx", ".xlsm"):
                continue
            table = Path(name).stem.strip()
            if table not in TABLES:
                problems.append(Problem("upload", "unknown_table_file", value=name, detail={
                    "file": name, "known": ", ".join(TABLES), **did_you_mean(table, TABLES)}))
                continue
            by_table.setdefault(table, []).append(name)
        for table, given in by_table.items():
            if len(given) > 1:
                problems.append(Problem(table, "duplicate_file", value=", ".join(given), detail={
                    "count": str(len(given)), "files": ", ".join(given)}))
        workbooks = [n for n in names if Path(n).suffix.lower() in (".xlsx", ".xlsm")]
        if workbooks and len(pairs) > 1:
            problems.append(Problem("upload", "unreadable_file", value=", ".join(sorted(names)),
                                    detail={"reason_zh": "只能上传一个工作簿,或一组表格文件",
                                            "reason_en": "send one .xlsx workbook or a "
                                                         "folder's CSV/Parquet files, not "
                                                         "both"}))
        if problems:
            return folder, problems
        if workbooks:
            target = folder / "scenario.xlsx"
            target.write_bytes(names[workbooks[0]])
            return target, []
        for name, data in names.items():
            (folder / name).write_bytes(data)
        return folder, []

    def load(self, digest: str) -> Scenario:
        """The kept scenario with this digest (cached; the newest few stay in memory).

        Raises
        ------
        KeyError
            When no scenario with this digest is kept.
        """
        with self._lock:
            if digest in self._cache:
                self._cache.move_to_end(digest)
                return self._cache[digest]
        row = self.store.scenario(digest)
        if row is None:
            raise KeyError(f"没有场景 {digest} / no scenario {digest}")
        scenario = load_scenario(row["path"])
        with self._lock:
            self._cache[row["digest"]] = scenario
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return scenario


class JobWorker:
    """Runs the store's quarterly jobs in ``slots`` background threads.

    Parameters
    ----------
    store, library
        Where jobs and scenarios are kept.
    slots
        Jobs run at the same time (each a thread that starts one plan at a time).
    workers
        Processes of each plan's pool (``None``: the planner's default).
    address
        A Ray cluster's address for jobs with ``engine="ray"``.
    poll
        Seconds between looks at the queue when nobody wakes the worker.
    """

    def __init__(self, store: RunStore, library: ScenarioLibrary, *, slots: int = 1,
                 workers: int | None = None, address: str | None = None, poll: float = 1.0):
        self.store = store
        self.library = library
        self.slots = max(1, int(slots))
        self.workers = workers
        self.address = address
        self.poll = poll
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self._cancel: set[int] = set()
        self._running: dict[int, Job] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    # -- control ------------------------------------------------------------------------------

    def start(self) -> list[Job]:
        """Recover interrupted jobs, then start the threads; returns the recovered jobs."""
        recovered = self.store.recover_jobs(MAX_ATTEMPTS)
        for job in recovered:
            log.warning("job %s was interrupted: now %s (attempt %s)", job.job_id, job.state,
                        job.attempts)
        self._stop.clear()
        for i in range(self.slots):
            thread = threading.Thread(target=self._loop, name=f"wulian-job-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return recovered

    def stop(self, timeout: float = 30.0) -> None:
        """Stop in order: running plans are asked to stop and their jobs go back to the queue
        (not counted as an attempt)."""
        self._stop.set()
        self.wake()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def wake(self) -> None:
        """Look at the queue now (a job was submitted)."""
        with self._wake:
            self._wake.notify_all()

    def cancel(self, job_id: int) -> Job:
        """Cancel a job (see :meth:`RunStore.cancel_job`); a running plan stops at its next
        poll."""
        job = self.store.cancel_job(job_id)  # the flag first, then tell the running plan
        with self._lock:
            self._cancel.add(job_id)
        return job

    @property
    def running(self) -> list[int]:
        with self._lock:
            return sorted(self._running)

    # -- the loop -----------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                job = self.store.claim_job()
            except Exception:  # noqa: BLE001 - a database hiccup must not kill the worker
                log.exception("claiming a job failed; trying again")
                job = None
            if job is None:
                with self._wake:
                    self._wake.wait(self.poll)
                continue
            with self._lock:
                self._running[job.job_id] = job
            try:
                self._run(job)
            finally:
                with self._lock:
                    self._running.pop(job.job_id, None)
                    self._cancel.discard(job.job_id)

    def _run(self, job: Job) -> None:
        start = time.perf_counter()
        log.info("job %s started: scenario %s, quarter %s, engine %s, centre %s, attempt %s",
                 job.job_id, job.scenario[:12], job.quarter, job.engine, job.centre or "(all)",
                 job.attempts)
        try:
            from wulian.planning.quarter import Cancelled, plan_quarter
        except ImportError as err:
            self.store.fail_job(job, f"季度规划器不可用 / the quarterly planner is not "
                                     f"available: {err}")
            return
        progress, cancelled = self._callbacks(job)
        try:
            scenario = self.library.load(job.scenario)
            plan = plan_quarter(scenario, job.quarter, engine=job.engine, address=self.address,
                                workers=self.workers, centre=job.centre or None,
                                progress=progress, cancelled=cancelled)
        except Cancelled:
            if self._stop.is_set() and not self.store.cancel_requested(job.job_id):
                self.store.requeue_job(job, "服务已停止,将重新运行 / the service stopped; the "
                                            "job runs again when it starts")
                log.info("job %s put back in the queue (service stopping)", job.job_id)
            else:
                self.store.cancelled_job(job)
                log.info("job %s cancelled", job.job_id)
            return
        except Exception as err:  # noqa: BLE001 - any failure of a plan is the job's reason
            reason = f"{type(err).__name__}: {err}"
            self.store.fail_job(job, f"规划失败 / the plan failed: {reason}")
            log.error("job %s failed: %s", job.job_id, type(err).__name__)
            log.debug("job %s traceback:\n%s", job.job_id, traceback.format_exc())
            return
        info = {**plan.info, "job_id": job.job_id, "input_digest": scenario.digest,
                "policy": plan.info.get("policy") or {"digest": _policy_digest(scenario)},
                "status": plan.info.get("status", "done"),
                "parameters": {**plan.info.get("parameters", {}), "week": job.quarter,
                               "centre": job.centre, "engine": job.engine}}
        run_id = self.store.finish_job(job, info, plan.tables)
        if run_id is None:
            log.warning("job %s: attempt %s no longer owns the job; its plan was not saved",
                        job.job_id, job.attempts)
        else:
            log.info("job %s done in %.1f s: run %s", job.job_id,
                     time.perf_counter() - start, run_id)

    def _callbacks(self, job: Job) -> tuple[Callable, Callable]:
        """``progress`` and ``cancelled`` for one attempt; database writes and reads are
        throttled, so a plan with thousands of steps does not hammer the store."""
        state = {"written": 0.0, "checked": 0.0, "flag": False}

        def progress(done: int, total: int, label: str = "") -> None:
            now = time.monotonic()
            if done >= total or now - state["written"] >= 0.2:
                state["written"] = now
                self.store.job_progress(job, done, total, str(label))

        def cancelled() -> bool:
            if self._stop.is_set():
                return True
            with self._lock:
                if job.job_id in self._cancel:
                    return True
            now = time.monotonic()
            if now - state["checked"] >= 1.0:  # a cancel sent to another service process
                state["checked"] = now
                state["flag"] = self.store.cancel_requested(job.job_id)
            return bool(state["flag"])

        return progress, cancelled


def _policy_digest(scenario: Scenario) -> str:
    digest = getattr(scenario.policy, "digest", "")
    return digest() if callable(digest) else str(digest or "")
