"""The run store — runs, scenarios and jobs — on SQLite and on PostgreSQL, with the same tests."""

from __future__ import annotations

import threading

import pandas as pd
import pytest
import sqlalchemy as sa

from wulian.planning.store import RunStore


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """An empty run store on each backend (PostgreSQL: a fresh schema in the session's
    database)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'runs.sqlite'}"
    else:
        url = request.getfixturevalue("pg_url")
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
        engine.dispose()
    store = RunStore(url)
    yield store
    store.engine.dispose()


def _info(week: str = "2026-W49", centre: str = "", digest: str = "d" * 64) -> dict:
    return {"input_digest": digest, "policy": {"digest": "p" * 64}, "status": "optimal",
            "parameters": {"week": week, "centre": centre}}


TABLE = pd.DataFrame({"need_id": ["N1", "N2", "N3"], "units": [1, 2, 3],
                      "cost": [10.5, 0.0, 3.25], "kept": [True, False, True]})


def test_backend_is_the_one_asked_for(store, request):
    """The fixture really gives a SQLite store and a PostgreSQL store."""
    dialect = store.engine.dialect.name
    assert dialect == ("sqlite" if "sqlite" in request.node.name else "postgresql")


def test_runs_round_trip_with_their_types(store):
    """save → list → load: the run comes back with the same values and dtypes."""
    run_id = store.save(_info(), {"allocations": TABLE}, scenario="demo")
    listed = store.list()
    assert list(listed["run_id"]) == [run_id]
    assert listed.loc[0, "week"] == "2026-W49" and listed.loc[0, "status"] == "optimal"
    back = store.load(run_id)
    assert back.info["parameters"]["week"] == "2026-W49"
    pd.testing.assert_frame_equal(back.tables["allocations"], TABLE)
    pd.testing.assert_frame_equal(store.table(run_id, "allocations"), TABLE)
    assert store.table_names(run_id) == ["allocations"]
    with pytest.raises(KeyError):
        store.table(run_id, "unmet")


def test_latest_and_previous(store):
    """latest() finds the newest run on an input; previous() the one before for the same week
    and centre."""
    first = store.save(_info(), {"t": TABLE})
    other = store.save(_info(week="2026-W50"), {"t": TABLE})
    second = store.save(_info(), {"t": TABLE})
    assert store.latest("d" * 64).run_id == second
    assert store.latest("d" * 64, before=second).run_id == other
    assert store.latest("e" * 64) is None
    assert store.previous(second).run_id == first
    assert store.previous(first) is None


def test_a_run_that_cannot_be_written_leaves_nothing(store):
    """A table that cannot be serialised aborts the save: no run row, no table rows."""
    store.save(_info(), {"t": TABLE})
    bad = pd.DataFrame({"x": [1, "one", 2.5]})
    with pytest.raises(Exception):  # noqa: B017 - whatever pyarrow raises, nothing is stored
        store.save(_info(), {"t": TABLE, "bad": bad})
    assert len(store.list()) == 1


def test_scenarios_registry(store):
    """A scenario is registered once by digest and found by a unique prefix of 8+ characters."""
    a, b = "ab120000" + "0" * 56, "ab120000" + "f" * 56
    assert store.add_scenario(a, name="a", fmt="csv", path="/x/a", counts={"needs": 5})
    assert not store.add_scenario(a, name="again", fmt="csv", path="/x/a", counts={})
    assert store.add_scenario(b, name="b", fmt="xlsx", path="/x/b", counts={"needs": 7})
    assert [s["digest"] for s in store.scenarios()] == [a, b]
    assert store.scenario(a)["counts"] == {"needs": 5}
    assert store.scenario(a)["name"] == "a"
    assert store.scenario("ab1200000")["digest"] == a
    assert store.scenario("ab12") is None  # too short
    assert store.scenario("ab120000") is None  # both match: never a guess
    assert store.scenario("ab120000f")["digest"] == b
    assert store.scenario("zz" * 8) is None


def test_job_life_cycle(store):
    """submit → claim → progress → finish: done, with its tables saved as a quarter run."""
    job = store.submit_job("d" * 64, "2027Q1", centre="D04", owner_role="planner")
    assert (job.state, job.attempts, job.centre, job.owner_role) == ("queued", 0, "D04",
                                                                     "planner")
    claimed = store.claim_job()
    assert claimed.job_id == job.job_id and claimed.state == "running" and claimed.attempts == 1
    assert store.claim_job() is None
    assert store.job_progress(claimed, 3, 13, "week 3")
    now = store.job(job.job_id)
    assert (now.done, now.total, now.label) == (3, 13, "week 3")
    run_id = store.finish_job(claimed, _info(week="2027Q1", centre="D04"), {"money": TABLE})
    done = store.job(job.job_id)
    assert done.state == "done" and done.run_id == run_id and done.finished_at
    pd.testing.assert_frame_equal(store.table(run_id, "money"), TABLE)
    assert store.list().loc[0, "kind"] == "quarter"
    with pytest.raises(KeyError):
        store.job(10_000)


def test_claims_are_atomic_under_contention(store):
    """Eight threads race for five queued jobs: each job is run by exactly one of them."""
    ids = [store.submit_job("d" * 64, "2027Q1").job_id for _ in range(5)]
    claims: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker():
        start.wait()
        while (job := store.claim_job()) is not None:
            with lock:
                claims.append(job.job_id)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(claims) == ids
    assert all(store.job(i).attempts == 1 and store.job(i).state == "running" for i in ids)


def test_the_same_job_claimed_twice_goes_to_one(store):
    """Claiming a given job id twice: the first gets it, the second gets nothing."""
    job = store.submit_job("d" * 64, "2027Q1")
    assert store.claim_job(job.job_id).attempts == 1
    assert store.claim_job(job.job_id) is None


def test_an_attempt_that_lost_its_job_writes_nothing(store):
    """After a restart retried the job, the old attempt can neither finish nor fail it, and
    its run is rolled back whole."""
    store.submit_job("d" * 64, "2027Q1")
    old = store.claim_job()
    recovered = store.recover_jobs()
    assert [(j.state, j.attempts) for j in recovered] == [("queued", 1)]
    assert "interrupted" in recovered[0].error
    new = store.claim_job()
    assert new.attempts == 2
    assert store.finish_job(old, _info(), {"money": TABLE}) is None
    assert len(store.list()) == 0
    assert not store.fail_job(old, "late")
    assert not store.job_progress(old, 1, 2, "late")
    assert store.finish_job(new, _info(), {"money": TABLE}) is not None
    assert store.job(new.job_id).state == "done"


def test_recovery_fails_a_job_interrupted_twice_with_its_reason(store):
    """A job interrupted in its second attempt is marked failed, saying why; one that was
    asked to stop is marked cancelled; finished jobs are untouched."""
    job = store.submit_job("d" * 64, "2027Q1")
    store.claim_job()
    store.recover_jobs()
    store.claim_job()
    stopping = store.submit_job("d" * 64, "2027Q2")
    store.claim_job(stopping.job_id)
    store.cancel_job(stopping.job_id)
    finished = store.submit_job("d" * 64, "2027Q3")
    store.finish_job(store.claim_job(finished.job_id), _info(), {})
    store.recover_jobs()
    failed = store.job(job.job_id)
    assert failed.state == "failed" and failed.attempts == 2
    assert "interrupted in each of 2 attempts" in failed.error and "中断" in failed.error
    assert store.job(stopping.job_id).state == "cancelled"
    assert store.job(finished.job_id).state == "done"


def test_cancel_queued_running_and_done(store):
    """Cancel: a queued job at once, a running one by flag, a finished one not at all."""
    queued = store.submit_job("d" * 64, "2027Q1")
    assert store.cancel_job(queued.job_id).state == "cancelled"
    assert store.claim_job(queued.job_id) is None
    running = store.submit_job("d" * 64, "2027Q1")
    attempt = store.claim_job()
    flagged = store.cancel_job(running.job_id)
    assert flagged.state == "running" and flagged.cancel_requested
    assert store.cancel_requested(running.job_id)
    assert store.cancelled_job(attempt)
    assert store.job(running.job_id).state == "cancelled"
    done = store.submit_job("d" * 64, "2027Q1")
    store.finish_job(store.claim_job(), _info(), {})
    assert store.cancel_job(done.job_id).state == "done"
    with pytest.raises(KeyError):
        store.cancel_job(9_999)


def test_requeue_on_orderly_stop_does_not_count_an_attempt(store):
    """A job put back by an orderly shutdown keeps its attempt count."""
    job = store.submit_job("d" * 64, "2027Q1")
    attempt = store.claim_job()
    assert store.requeue_job(attempt, "stopped")
    again = store.job(job.job_id)
    assert (again.state, again.attempts) == ("queued", 0)
    assert store.claim_job().attempts == 1


def test_jobs_listing_newest_first_and_by_state(store):
    """jobs() lists newest first; a state filter keeps only that state."""
    a = store.submit_job("d" * 64, "2027Q1")
    b = store.submit_job("d" * 64, "2027Q2")
    store.claim_job(a.job_id)
    assert [j.job_id for j in store.jobs()] == [b.job_id, a.job_id]
    assert [j.job_id for j in store.jobs("running")] == [a.job_id]
