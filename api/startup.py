"""What ``wulian serve`` checks and tidies before it says ready, and what it leaves for the next
start: the store's health, the staging folders of uploads, the orphans of a crashed service.

- :func:`check_store`: SQLite ``PRAGMA quick_check`` (a damaged page or header is found now, not
  as 500s later); PostgreSQL a connection and a schema revision this wulian knows.
- :func:`clean_incoming`: ``DATA/.incoming/`` holds an upload while it is validated; what a
  crash left there is unvalidated household data, removed at start.
- :func:`reap_orphans`: a service killed with ``kill -9`` leaves its plan's pool workers and
  resource trackers running (spawned children, reparented to init). The service writes its
  pid and process group to ``DATA/.serve.pid``; the next start ends the previous group's
  orphaned multiprocessing children when that pid is gone.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
from pathlib import Path

PID_FILE = ".serve.pid"
INCOMING = ".incoming"


class StartupError(RuntimeError):
    """The service must not start (bilingual message)."""


def check_store(url: str) -> None:
    """Raise :class:`StartupError` with a clear message when the store is damaged or of an
    unknown schema revision."""
    import sqlalchemy as sa

    from wulian.planning.db import head, revision
    from wulian.planning.store import redact_url

    shown = redact_url(url)
    if url.startswith("sqlite"):
        path = sa.make_url(url).database
        if not path or path == ":memory:" or not Path(path).exists():
            return  # a new store is made on first use
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as conn:
                found = [row[0] for row in conn.execute("PRAGMA quick_check(20)")]
        except sqlite3.DatabaseError as err:
            raise StartupError(f"运行库已损坏,无法打开 / the store {shown} is damaged and "
                               f"cannot be opened: {err}. 请从备份恢复 / restore it from a "
                               "backup") from None
        if found != ["ok"]:
            raise StartupError(f"运行库已损坏 / the store {shown} is damaged "
                               f"(PRAGMA quick_check: {'; '.join(found[:3])}). 请从备份恢复 / "
                               "restore it from a backup")
        return
    try:
        engine = sa.create_engine(url, pool_pre_ping=True)
        try:
            found_revision = revision(engine)
        finally:
            engine.dispose()
    except sa.exc.SQLAlchemyError as err:
        raise StartupError(f"无法连接运行库 / cannot reach the store {shown}: "
                           f"{type(err).__name__}") from None
    if found_revision is not None and found_revision != head() and not _known(found_revision):
        raise StartupError(f"运行库的结构版本 {found_revision} 未知(由更新的 wulian 创建?)/ the "
                           f"store {shown} has schema revision {found_revision}, unknown to this "
                           "wulian (made by a newer one?)")


def _known(rev: str) -> bool:
    from alembic.script import ScriptDirectory

    from wulian.planning.db import _config  # noqa: PLC2701 - the one place the config is made

    try:
        return ScriptDirectory.from_config(_config()).get_revision(rev) is not None
    except Exception:  # noqa: BLE001 - alembic raises several kinds for an unknown id
        return False


def clean_incoming(data_dir: Path) -> int:
    """Remove the staging folders an earlier run left under ``DATA/.incoming``; returns how
    many there were."""
    incoming = data_dir / INCOMING
    if not incoming.is_dir():
        return 0
    left = list(incoming.iterdir())
    for path in left:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return len(left)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _orphans(group: int) -> list[int]:
    """The multiprocessing children (pool workers, resource trackers) left in process group
    ``group`` (called once its leader, the previous service, is gone)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        pgid = int(fields[2])
        if pgid == group and b"multiprocessing" in cmdline:
            found.append(int(entry.name))
    return found


def reap_orphans(data_dir: Path) -> int:
    """End the orphaned pool workers of a previous service on the same data folder (its pid
    gone), then record this process; returns how many were ended."""
    pid_file = data_dir / PID_FILE
    ended = 0
    try:
        previous = json.loads(pid_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        previous = None
    if isinstance(previous, dict) and not _alive(int(previous.get("pid", 0))) \
            and Path("/proc").is_dir():
        for pid in _orphans(int(previous.get("pgid", 0))):
            try:
                os.kill(pid, signal.SIGKILL)
                ended += 1
            except ProcessLookupError:
                pass
    data_dir.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(json.dumps({"pid": os.getpid(), "pgid": os.getpgrp()}),
                        encoding="utf-8")
    return ended
