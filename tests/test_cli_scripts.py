"""A CLI that scripts (issue 18): --version, errors as one bilingual line on stderr, exit 0 / 1
(the data or the domain says no) / 2 (the command line is wrong), --json with strict JSON,
-q and -v, the default store in the user's data directory."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from wulian.api.cli import main
from wulian.planning.io import Outputs, strict_json

CLEAN = Path(__file__).parent / "data" / "clean"
CJK = "\u4e00-\u9fff"


def strict(text: str):
    """Parse ``text`` as a strict parser would: NaN, Infinity and -Infinity are refused."""
    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def store(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'runs.sqlite'}"
    monkeypatch.setenv("WULIAN_STORE", url)
    return url


def one_error_line(err: str) -> str:
    """The stderr of a failed command: exactly one line, in Chinese and English."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    line = lines[0]
    assert any("\u4e00" <= ch <= "\u9fff" for ch in line), line
    assert " / " in line and any(ch.isascii() and ch.isalpha() for ch in line), line
    assert "Traceback" not in line
    return line


MISTAKES = [
    # (arguments, exit code, words the line must hold)
    (["allocate", str(CLEAN), "--out", "{tmp}/o", "--week", "2030-W01"], 1, "2030-W01"),
    (["allocate", str(CLEAN), "--out", "{tmp}/o", "--week", "2030-01"], 2, "2026-W49"),
    (["match", str(CLEAN), "--out", "{tmp}/o", "--week", "2030-W01"], 1, "nothing to allocate"),
    (["budget", str(CLEAN), "--sweep", "F02:0:x:5"], 2, "FUND:FROM:TO:STEPS"),
    (["budget", str(CLEAN), "--sweep", "F02:0:100"], 2, "FUND:FROM:TO:STEPS"),
    (["budget", str(CLEAN), "--sweep", "NOPE:0:100:3"], 2, "NOPE"),
    (["budget", str(CLEAN), "--plot", "{tmp}/c.png"], 2, "--sweep"),
    (["budget", str(CLEAN), "--set", "F01=lots"], 2, "FUND=YUAN"),
    (["runs", "show"], 2, "runs show"),
    (["runs", "show", "999"], 2, "999"),
    (["runs", "diff"], 2, "runs diff"),
    (["allocate", str(CLEAN), "--out", "{tmp}/o", "--centre", "NOPE"], 2, "NOPE"),
    (["match", str(CLEAN), "--out", "{tmp}/o", "--centre", "NOPE"], 2, "NOPE"),
    (["budget", str(CLEAN), "--centre", "NOPE"], 2, "NOPE"),
    (["allocate", "{tmp}/nowhere", "--out", "{tmp}/o"], 2, "nowhere"),
    (["allocate", str(CLEAN.parent / "negative_capacity"), "--out", "{tmp}/o", "-q"], 1,
     "problem"),
]


@pytest.mark.parametrize(("argv", "code", "words"), MISTAKES,
                         ids=[" ".join(m[0][:1] + m[0][2:]) for m in MISTAKES])
def test_every_mistake_is_one_bilingual_line_on_stderr(argv, code, words, tmp_path, store,
                                                       capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == code
    out, err = capsys.readouterr()
    line = one_error_line(err)
    assert words in line
    if code == 2 or "-q" in argv:
        assert out == ""  # nothing ran: stdout stays clean for a script


def test_version_and_exit_codes_in_a_real_process(tmp_path, store):
    """--version prints the version; `runs show ID --json | python -m json.tool` works; a
    usage error exits 2 with its line on stderr only."""
    env_run = [sys.executable, "-m", "wulian.api.cli"]
    done = subprocess.run([*env_run, "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("wulian ")
    assert main(["-q", "allocate", str(CLEAN), "--out", str(tmp_path / "o")]) == 0
    show = subprocess.run([*env_run, "runs", "show", "1", "--json"], capture_output=True,
                          text=True, check=True)
    tool = subprocess.run([sys.executable, "-m", "json.tool"], input=show.stdout,
                          capture_output=True, text=True)
    assert tool.returncode == 0, tool.stderr
    assert strict(show.stdout)["run_id"] == 1
    bad = subprocess.run([*env_run, "runs", "show"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stdout == ""
    one_error_line(bad.stderr)


def test_json_outputs_are_strict_and_alone_on_stdout(tmp_path, store, capsys):
    """--json on allocate, match, budget and runs list|show|diff: stdout is one strict JSON
    document, nothing else; run.json parses strictly too."""
    assert main(["allocate", str(CLEAN), "--out", str(tmp_path / "a"), "--json"]) == 0
    first = strict(capsys.readouterr().out)
    assert first["run_id"] == 1 and set(first["fill_rate"]) == {"red", "orange", "yellow",
                                                               "green"}
    strict((tmp_path / "a" / "run.json").read_text(encoding="utf-8"))
    assert main(["match", str(CLEAN), "--out", str(tmp_path / "m"), "--json"]) == 0
    matched = strict(capsys.readouterr().out)
    assert matched["placed"] >= 0 and "unplaced_by_reason" in matched
    strict((tmp_path / "m" / "match.json").read_text(encoding="utf-8"))
    assert main(["budget", str(CLEAN), "--sweep", "F01:0:1200:3", "--json"]) == 0
    budget = strict(capsys.readouterr().out)
    assert len(budget["curve"]) == 3 * 4 and budget["status"] == "optimal"
    assert main(["runs", "list", "--json"]) == 0
    runs = strict(capsys.readouterr().out)
    assert [r["run_id"] for r in runs] == [2, 1]
    assert main(["runs", "show", "1", "--json"]) == 0
    shown = strict(capsys.readouterr().out)
    assert shown["run_id"] == 1 and shown["info"]["status"] and shown["rows"]["plans"] > 0
    assert main(["runs", "diff", "1", "2", "--json"]) == 0
    assert strict(capsys.readouterr().out)["new"] == 2


def test_quiet_prints_nothing_on_success(tmp_path, store, capsys):
    assert main(["allocate", str(CLEAN), "--out", str(tmp_path), "-q"]) == 0
    out, err = capsys.readouterr()
    assert out == "" and err == ""
    assert (tmp_path / "allocations.csv").exists()


def test_verbose_shows_the_traceback_of_an_unexpected_error(tmp_path, store, capsys,
                                                            monkeypatch):
    """Without -v an unexpected error is one line and exit 1; with -v it raises."""
    import wulian.api.cli as cli

    def broken(*_a, **_k):
        raise RuntimeError("boom")

    monkeypatch.setattr(cli, "show_scenario", broken)
    assert main(["demo", str(CLEAN), "--out", str(tmp_path), "--weeks", "0"]) == 1
    assert "boom" in one_error_line(capsys.readouterr().err)
    with pytest.raises(RuntimeError):
        main(["-v", "demo", str(CLEAN), "--out", str(tmp_path), "--weeks", "0"])


def test_strict_json_turns_nan_into_null(tmp_path):
    info = {"a": math.nan, "b": [1.0, math.inf, -math.inf], "c": {"d": float("nan")}}
    assert strict(strict_json(info)) == {"a": None, "b": [1.0, None, None], "c": {"d": None}}
    Outputs({}, {"run_id": 7, "gap": math.nan}).write(tmp_path)
    assert strict((tmp_path / "run.json").read_text(encoding="utf-8")) == {"gap": None,
                                                                           "run_id": 7}


def test_default_store_is_in_the_user_data_directory(tmp_path, monkeypatch, capsys):
    """With no --store and no $WULIAN_STORE, runs go to the user's data directory (XDG when
    platformdirs is absent), said once on stderr — never into the current directory."""
    import wulian.planning.store as store_module

    monkeypatch.delenv("WULIAN_STORE", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    path = store_module.default_store_path()
    assert path.name == "runs.sqlite" and "wulian" in path.parts
    assert str(path).startswith(str(tmp_path))
    assert main(["allocate", str(CLEAN), "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert str(path) in err and path.exists()
    assert main(["allocate", str(CLEAN), "--out", str(tmp_path / "o")]) == 0
    assert str(path) not in capsys.readouterr().err  # once
    assert not (tmp_path / "runs").exists()


# The plan, cycle and service commands: the same convention (issue 18). The register is the
# clean scenario imported once per test; a week not opened, an unknown need, an unknown alert
# are the register's refusals (1); a malformed or missing argument is the command line's (2).
CYCLE_MISTAKES = [
    (["plan", str(CLEAN), "--quarter", "2027Q9", "--out", "{tmp}/p"], 2, "2027Q9"),
    (["plan", str(CLEAN), "--quarter", "2027Q1", "--out", "{tmp}/p", "--centre", "NOPE"], 2,
     "NOPE"),
    (["plan", "{tmp}/nowhere", "--quarter", "2027Q1", "--out", "{tmp}/p"], 2, "nowhere"),
    (["week", "open"], 2, "2027-W02"),
    (["week", "open", "2027-W99"], 2, "2027-W99"),
    (["week", "close", "2027-W02"], 1, "2027-W02"),
    (["week", "record"], 2, "workbooks"),
    (["register", "withdraw", "N404"], 1, "N404"),
    (["register", "household", "H404", "--set", "size"], 2, "COLUMN=VALUE"),
    (["register", "household", "H404", "--date", "soon"], 2, "soon"),
    (["register", "history", "H404"], 2, "H404"),
    (["register", "import", "{tmp}/nowhere"], 2, "nowhere"),
    (["funds", "ledger", "--from", "W1"], 2, "W1"),
    (["alerts", "--ack", "A404"], 1, "A404"),
    (["alerts", "--centre", "NOPE"], 2, "NOPE"),
    (["performance", "--weeks", "bad"], 2, "bad"),
    (["simulate", "{tmp}/nowhere"], 2, "nowhere"),
    (["token", "create"], 2, "--role"),
    (["token", "create", "--role", "coordinator"], 2, "--centre"),
    (["token", "revoke"], 2, "token id"),
    (["token", "revoke", "999"], 1, "999"),
    (["jobs", "status", "--url", "http://127.0.0.1:9"], 2, "job id"),
    (["jobs", "list", "--url", "http://127.0.0.1:9"], 2, "cannot reach the service"),
    (["db", "current", "--store", "nope://user:secret@host/db"], 2, "not a store URL"),
    (["register", "export", "/proc/nowhere/out"], 2, "文件或文件夹不存在:/proc/nowhere"),
]


@pytest.fixture
def register_store(store):
    """The store with the clean scenario in its register."""
    assert main(["-q", "register", "import", str(CLEAN)]) == 0
    return store


@pytest.mark.parametrize(("argv", "code", "words"), CYCLE_MISTAKES,
                         ids=[" ".join(m[0][:2]) + f" {i}" for i, m in
                              enumerate(CYCLE_MISTAKES)])
def test_cycle_plan_and_service_mistakes_are_one_bilingual_line(argv, code, words, tmp_path,
                                                                register_store, capsys,
                                                                monkeypatch):
    """`wulian plan`, `register`, `week`, `funds`, `alerts`, `performance`, `simulate`,
    `token` and `jobs` printed their errors in red on stdout with exit codes of their own;
    now each mistake is one bilingual line on stderr, exit 1 (refused) or 2 (usage)."""
    monkeypatch.delenv("WULIAN_TOKEN", raising=False)
    monkeypatch.delenv("WULIAN_URL", raising=False)
    capsys.readouterr()
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == code
    out, err = capsys.readouterr()
    line = one_error_line(err)
    assert words in line
    assert "错误 / error" in line and "[bold" not in out + err
    assert "secret" not in line  # a store URL's password is never printed
    if code == 2:
        assert out == ""  # nothing ran: stdout stays clean for a script
