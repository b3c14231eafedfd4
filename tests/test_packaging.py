"""wulian installs as one package (issue 13): the wheel's only top-level name is ``wulian``, it
carries its data, its core needs no app, service or test libraries, and the installed wheel runs
the demo from any folder."""

from __future__ import annotations

import email
import os
import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("contract", "demand", "resources", "planning", "optimizer", "api", "ui", "data")
OWN = r"(api|ui|contract|demand|resources|planning|optimizer)"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                           str(out), str(ROOT)], capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    wheels = list(out.glob("wulian-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


def test_the_wheel_holds_one_package_with_its_data(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        top = next(n for n in names if n.endswith("top_level.txt"))
        assert z.read(top).decode().split() == ["wulian"]
        meta = email.message_from_bytes(z.read(next(n for n in names if n.endswith("METADATA"))))
    assert {n.split("/")[0] for n in names} == {"wulian", wheel.name.split("-")[0] + "-"
                                                 + wheel.name.split("-")[1] + ".dist-info"}
    # Every module of every folder is in the wheel, under wulian/.
    for folder in FOLDERS:
        for path in (ROOT / folder).rglob("*.py"):
            assert f"wulian/{path.relative_to(ROOT).as_posix()}" in names, path
    for data in ("wulian/data/demo/needs.csv", "wulian/demand/default_policy.toml",
                 "wulian/planning/migrations/env.py", "wulian/ui/app.py",
                 "wulian/ui/favicon.png"):
        assert data in names
    assert any(n.startswith("wulian/planning/migrations/versions/") for n in names)
    assert any(n.endswith("dist-info/licenses/LICENSE") for n in names)
    # The core installs without the app, the service, Ray, PuLP or psutil.
    core = [r for r in meta.get_all("Requires-Dist") if "extra ==" not in r]
    names_core = {re.split(r"[<>=\[; ]", r)[0].lower() for r in core}
    assert not names_core & {"streamlit", "fastapi", "uvicorn", "ray", "pulp", "psutil",
                             "altair", "pytest"}
    extras = set(meta.get_all("Provides-Extra"))
    assert {"app", "service", "ray", "postgres", "test", "all"} <= extras


def test_the_installed_wheel_runs_the_demo_from_anywhere(wheel, tmp_path):
    """The wheel in a virtual environment of its own (its dependencies taken from this one's
    site-packages, which lie behind it on the path), run from a folder that is not the
    repository."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig."
                                "get_paths()['purelib'])"], capture_output=True, text=True,
                               check=True).stdout.strip())
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    # Dependencies from this environment, after the wheel's own files (an editable wulian in
    # this environment is a finder that only its own .pth starts, so it is not seen there).
    (site / "zz_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WULIAN")}
    env["PYTHONPATH"] = ""
    where = subprocess.run([str(python), "-c", "import wulian, wulian.api.cli; "
                            "print(wulian.__file__)"], capture_output=True, text=True, cwd=tmp_path,
                           env=env, check=True).stdout.strip()
    assert where.startswith(str(site)), where
    out = tmp_path / "x"
    done = subprocess.run([str(python), "-m", "wulian.api.cli", "demo", "--out", str(out),
                           "--weeks", "0", "--store", f"sqlite:///{tmp_path / 'runs.sqlite'}"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for table in ("allocations", "unmet", "plans", "summary"):
        assert (out / f"{table}.csv").stat().st_size > 0
    assert (out / "matching" / "assignments.csv").stat().st_size > 0  # beside, not over


def test_no_module_imports_the_folders_by_their_own_names():
    pattern = re.compile(rf"^\s*(from|import) {OWN}\b", re.M)
    for folder in (*FOLDERS, "tests", "bench", "reference", "wulian"):
        for path in (ROOT / folder).rglob("*.py"):
            assert not pattern.search(path.read_text(encoding="utf-8")), path


def test_bench_imports_nothing_from_tests():
    pattern = re.compile(r"^\s*(from|import) tests\b|sys\.path", re.M)
    for path in (ROOT / "bench").rglob("*.py"):
        assert not pattern.search(path.read_text(encoding="utf-8")), path
