"""Shared fixtures: a PostgreSQL server for the store tests, always.

CI (``.ci/run``) starts a PostgreSQL server and exports ``WULIAN_TEST_PG_URL``. When that
variable is unset (a developer's machine), :func:`pg_url` starts a throwaway cluster itself —
``initdb`` and ``pg_ctl`` from ``/usr/lib/postgresql/*/bin``, run as the ``postgres`` user when
the tests run as root, on a free port with its own data and socket directory — and stops it
when the session ends. Without a PostgreSQL installation the tests that need it fail with the
reason; they are never skipped.
"""

from __future__ import annotations

import glob
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: [int(x) for x in p.split("/")[4].split(".") if x.isdigit()])
    if not found:
        raise RuntimeError("没有找到 PostgreSQL / no PostgreSQL server found under "
                           "/usr/lib/postgresql/*/bin: install it (apt-get install postgresql) "
                           "or set WULIAN_TEST_PG_URL to a server of your own")
    return Path(found[-1]).parent


def _as_postgres(command: list[str]) -> None:
    """Run a PostgreSQL tool, as the ``postgres`` user when we are root (initdb refuses root)."""
    if os.geteuid() == 0:
        argv = ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(command)]
    else:
        argv = command
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                   timeout=120)


@pytest.fixture(autouse=True)
def _main_module_kept():
    """Streamlit's AppTest runs a page as ``__main__`` and leaves it in ``sys.modules``; a
    process pool started later (multiprocessing's spawn) would then run that page in each of
    its workers, which die (``BrokenProcessPool`` in whatever test comes next)."""
    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A SQLAlchemy URL of an empty PostgreSQL database for this test session."""
    url = os.environ.get("WULIAN_TEST_PG_URL")
    if url:
        yield url
        return
    bin_dir = _pg_bin()
    root = Path(tempfile.mkdtemp(prefix="wulian-test-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    port = free_port()
    data = root / "data"
    _as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"])
    _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w",
                  "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"])
    try:
        _as_postgres([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port),
                      "-U", "postgres", "wulian_test"])
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/wulian_test"
    finally:
        _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"])
        shutil.rmtree(root, ignore_errors=True)


REPO = Path(__file__).resolve().parent.parent


class Server:
    """A ``wulian serve`` subprocess on a free port; its stdout and stderr go to ``log``."""

    def __init__(self, store_url: str, data_dir: Path, log: Path, *extra: str):
        self.store_url, self.data_dir, self.log_path = store_url, data_dir, log
        self.extra = extra
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90.0) -> Server:
        import sys
        import time

        import httpx

        argv = [sys.executable, "-m", "wulian.api.cli", "serve", "--host", "127.0.0.1", "--port",
                str(self.port), "--store", self.store_url, "--data", str(self.data_dir),
                *self.extra]
        with open(self.log_path, "ab") as log:
            # A session of its own, so that stopping it also stops its plan's pool processes.
            self.proc = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"wulian serve exited ({self.proc.returncode}):\n"
                                   + self.log_path.read_text(errors="replace")[-3000:])
            try:
                if httpx.get(self.url + "/v1/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("wulian serve did not come up:\n"
                           + self.log_path.read_text(errors="replace")[-3000:])

    def stop(self, sig: int | None = None, timeout: float = 60.0) -> None:
        """Stop the server's process group (SIGTERM: in order; SIGKILL: a crash)."""
        import signal

        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, sig or signal.SIGTERM)
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout)
        except ProcessLookupError:
            pass
        if sig is not None and sig != signal.SIGTERM:
            # A crash leaves pool workers behind in the same group: end them too.
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    @property
    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def fresh_store_url(request, root: Path, database: str) -> str:
    """A fresh store on the backend a parametrised test asks for (``request.param``: sqlite or
    postgresql; PostgreSQL: a database of its own, made anew, in the session's server)."""
    import sqlalchemy as sa

    if request.param == "sqlite":
        return f"sqlite:///{root / 'store.sqlite'}"
    base = sa.make_url(request.getfixturevalue("pg_url"))
    engine = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        conn.execute(sa.text(f"CREATE DATABASE {database}"))
    engine.dispose()
    return base.set(database=database).render_as_string(hide_password=False)


def make_token(store_url: str, role: str, centre: str | None = None) -> str:
    """A new API token's secret, made in the store the server uses."""
    import sqlalchemy as sa

    from wulian.api.auth import TokenStore

    engine = sa.create_engine(store_url)
    try:
        return TokenStore(engine).create(role, centre)[1]
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def tiny_scenario(tmp_path_factory) -> Path:
    """The tiny preset (one district, two streets, six stations) as a CSV folder."""
    from wulian.planning.generate import generate_scenario
    from wulian.planning.io import write_tables

    out = tmp_path_factory.mktemp("tiny") / "scenario"
    write_tables(generate_scenario("tiny", 0), out, "csv")
    return out


def signed_in(at, role: str = "planner", centre: str = ""):
    """A Streamlit ``AppTest`` signed in as ``role`` (ui/signin.py): a token made in the store
    the app reads ($WULIAN_STORE, set before), and the principal it gives put in the session
    as the sign-in form does (the app looks the token up again at every run). Returns ``at``."""
    from wulian.api.auth import TokenStore
    from wulian.planning.store import RunStore, store_url
    from wulian.ui.signin import PRINCIPAL_KEY

    store = RunStore(store_url())
    tokens = TokenStore(store.engine)
    at.session_state[PRINCIPAL_KEY] = tokens.verify(tokens.create(role, centre, "test")[1])
    store.engine.dispose()
    return at
