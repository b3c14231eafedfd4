"""Engines that run independent tasks in parallel: a local process pool, or Ray.

An engine runs ``task(payload, key)`` for every key, where ``payload`` is shipped to each worker
**once** (the process pool's initializer; ``ray.put`` and a per-worker cache) and the keys are
small (a centre id). Results come back as they finish; the caller hears of each one
(``on_done``), may stop the run between tasks (``cancelled``), and gets every result keyed by
its key, so the order tasks finish in never changes the answer.

- ``local``: :class:`concurrent.futures.ProcessPoolExecutor` with ``spawn`` workers (no fork of
  a process that may hold solver or Ray threads), default one worker per core;
- ``ray``: tasks on Ray (``pip install 'wulian[ray]'``). With ``address`` it joins that cluster
  (``ray.init(address=...)``); without, it uses the Ray session already started in this
  process, or starts a small local one (no dashboard, a small object store, quiet logs) and
  shuts it down at the end.

No household data is logged: tasks report only timings.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

ENGINES = ("local", "ray")
POLL_SECONDS = 0.1  # how often a waiting engine looks at ``cancelled``
#: Object store of a local Ray started on demand, in bytes (the scenario is put there once).
RAY_OBJECT_STORE = int(os.environ.get("WULIAN_RAY_OBJECT_STORE", 512 * 1024**2))

Task = Callable[[Any, Hashable], Any]


class Cancelled(Exception):
    """The run was cancelled (``cancelled()`` returned true); nothing was returned."""


class EngineError(RuntimeError):
    """An engine could not be started (unknown name, Ray missing or unreachable)."""


@dataclass
class TaskResult:
    """One task's answer with its wall time in the worker and the worker's process id."""

    key: Hashable
    value: Any
    seconds: float
    pid: int


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)


# ----------------------------------------------------------------------------- worker side

_PAYLOAD: dict[str, Any] = {}  # the payload of this worker process, by its token


def _init_local(payload: Any) -> None:
    _PAYLOAD.clear()
    _PAYLOAD["local"] = payload


def _timed(task: Task, payload: Any, key: Hashable) -> TaskResult:
    start = time.perf_counter()
    value = task(payload, key)
    return TaskResult(key, value, time.perf_counter() - start, os.getpid())


def _local_call(task: Task, key: Hashable) -> TaskResult:
    return _timed(task, _PAYLOAD["local"], key)


def _ray_call(task: Task, boxed: list, key: Hashable) -> TaskResult:
    """Run on a Ray worker; ``boxed`` holds the payload's ObjectRef (in a list, so Ray does not
    fetch it for every task): the worker fetches it once and keeps it for later tasks."""
    import ray

    ref = boxed[0]
    token = ref.hex()
    if token not in _PAYLOAD:
        _PAYLOAD.clear()  # one payload per worker at a time: memory stays bounded
        _PAYLOAD[token] = ray.get(ref)
    return _timed(task, _PAYLOAD[token], key)


# ----------------------------------------------------------------------------- driver side


def run_tasks(task: Task, payload: Any, keys: Sequence[Hashable], *, engine: str = "local",
              address: str | None = None, workers: int | None = None,
              on_done: Callable[[TaskResult], None] | None = None,
              cancelled: Callable[[], bool] | None = None) -> tuple[dict, dict]:
    """Run ``task(payload, key)`` for every key on ``engine``.

    Parameters
    ----------
    task
        A module-level function (workers import it by name).
    payload
        Shipped to each worker once; must pickle.
    keys
        One task per key, submitted in this order (put the longest first).
    engine
        ``local`` or ``ray``.
    address
        Ray only: the address of an existing cluster (``ray://host:10001``, ``host:6379`` or
        ``auto``).
    workers
        Local: processes (default one per core). Ray started here: its CPUs (default one per
        core); ignored when joining a cluster.
    on_done
        Called in the driver with each :class:`TaskResult` as it finishes.
    cancelled
        Polled between tasks (every ``POLL_SECONDS`` while waiting); when it returns true,
        tasks not started are dropped, running ones are stopped, and :class:`Cancelled` is
        raised.

    Returns
    -------
    tuple of dict
        ``{key: TaskResult}`` and a description of the engine as run (name, workers, versions).

    Raises
    ------
    Cancelled
        When ``cancelled()`` became true.
    EngineError
        For an unknown engine, or Ray missing or unreachable.
    """
    cancelled = cancelled or (lambda: False)
    on_done = on_done or (lambda result: None)
    if engine == "local":
        return _run_local(task, payload, keys, workers, on_done, cancelled)
    if engine == "ray":
        return _run_ray(task, payload, keys, address, workers, on_done, cancelled)
    raise EngineError(f"未知的引擎 {engine!r},可选 {', '.join(ENGINES)} / unknown engine "
                      f"{engine!r}; use one of {', '.join(ENGINES)}")


def _run_local(task, payload, keys, workers, on_done, cancelled) -> tuple[dict, dict]:
    n = max(1, min(workers or default_workers(), len(keys) or 1))
    results: dict = {}
    if cancelled():
        raise Cancelled()
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=n, mp_context=context, initializer=_init_local,
                               initargs=(payload,))
    stopped = False
    try:
        pending = {pool.submit(_local_call, task, key) for key in keys}
        while pending:
            done, pending = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: str(f.result().key)):
                result = future.result()
                results[result.key] = result
                on_done(result)
            if pending and cancelled():
                stopped = True
                stop_workers(pool)
                # The pool now fails every pending future (BrokenProcessPool), which is thrown
                # away. Cancelling them as well races with that: CPython 3.11's pool then
                # raises InvalidStateError in its manager thread. So wait for it instead.
                wait(pending, timeout=5.0)
                raise Cancelled()
    finally:
        # After a stop, cancelling would race with the broken pool failing its futures.
        pool.shutdown(wait=True, cancel_futures=not stopped)
    return results, {"name": "local", "workers": n, "start_method": "spawn"}


def stop_workers(pool: ProcessPoolExecutor) -> None:
    """Stop the pool's workers now, running tasks included (a cancelled plan's answer is
    thrown away, so nothing is lost): ``terminate_workers`` where Python has it (3.14+), else
    each worker process is terminated."""
    terminate = getattr(pool, "terminate_workers", None)
    if terminate is not None:
        terminate()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.join(timeout=5)


def _import_ray():
    try:
        import ray
    except ImportError as exc:
        raise EngineError("未安装 Ray:请运行 pip install 'wulian[ray]' / Ray is not installed: "
                          "pip install 'wulian[ray]'") from exc
    return ray


def start_ray(address: str | None = None, workers: int | None = None):
    """The ``ray`` module with a session: the one already running in this process, the
    cluster at ``address``, or a small local Ray started now. Returns ``(ray, started)``."""
    ray = _import_ray()
    if ray.is_initialized():
        return ray, False
    quiet = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": False,
             "configure_logging": True}
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(num_cpus=workers or default_workers(),
                     object_store_memory=RAY_OBJECT_STORE, **quiet)
    except Exception as exc:  # Ray raises several kinds; each means "no Ray here"
        where = address or "local"
        raise EngineError(f"无法连接或启动 Ray({where}):{exc} / could not start or reach Ray "
                          f"({where}): {exc}") from exc
    return ray, True


def _run_ray(task, payload, keys, address, workers, on_done, cancelled) -> tuple[dict, dict]:
    if cancelled():
        raise Cancelled()
    ray, started = start_ray(address, workers)
    results: dict = {}
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(_ray_call)
        boxed = [ray.put(payload)]
        refs = [remote.remote(task, boxed, key) for key in keys]
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=len(pending), timeout=POLL_SECONDS,
                                     fetch_local=True)
            for result in sorted(ray.get(done), key=lambda r: str(r.key)):
                results[result.key] = result
                on_done(result)
            if pending and cancelled():
                for ref in pending:
                    ray.cancel(ref, force=True)
                raise Cancelled()
        cpus = int(ray.cluster_resources().get("CPU", 0))
        info = {"name": "ray", "workers": cpus, "address": address or "local",
                "ray": ray.__version__, "nodes": len(ray.nodes())}
    finally:
        if started:
            ray.shutdown()
    return results, info


class Slots(Executor):
    """Another executor's ``submit`` holding at most ``n`` of this caller's tasks in it at
    once (a further one waits for one of them to end): a week's open gives its matching's
    regions the allocation's pool less the core its bounds hold (planning/cycle.py)."""

    def __init__(self, pool: Executor, n: int):
        self.pool = pool
        self.free = threading.Semaphore(n)

    def widen(self, more: int = 1) -> None:
        """Let ``more`` further tasks into the pool at once (the core they wait for is free)."""
        self.free.release(more)

    def submit(self, fn, /, *args, **kwargs) -> Future:
        self.free.acquire()
        try:
            future = self.pool.submit(fn, *args, **kwargs)
        except BaseException:
            self.free.release()
            raise
        future.add_done_callback(lambda _: self.free.release())
        return future


__all__ = ["ENGINES", "Cancelled", "EngineError", "Slots", "TaskResult", "default_workers",
           "run_tasks", "start_ray"]
