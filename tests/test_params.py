"""Parameters check themselves where they are given: a value the solver would misread is
refused with one message in Chinese and English (optimizer/checks.py), never taken as
something else (``decompose="Always"`` was silently "auto")."""

from __future__ import annotations

import math
from dataclasses import asdict, replace

import numpy as np
import pytest

from wulian.optimizer.allocation import AllocationParams
from wulian.optimizer.lexmip import Level, Rows, solve_lexicographic
from wulian.optimizer.matching import solve_gap


def _refused(call, *fragments: str) -> str:
    """``call()`` raises ValueError whose message holds every fragment and both languages."""
    with pytest.raises(ValueError) as err:
        call()
    message = str(err.value)
    zh, sep, en = message.partition(" / ")
    assert sep, message
    assert any("\u4e00" <= ch <= "\u9fff" for ch in zh), message  # Chinese first
    assert en.isascii(), message  # then English
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def test_defaults_and_every_documented_value_are_accepted():
    params = AllocationParams()
    assert asdict(params)["decompose"] == "auto"  # run.json's "parameters" as before
    for decompose in ("auto", "always", "never"):
        AllocationParams(decompose=decompose)
    for by in ("street", "district"):
        AllocationParams(decompose_by=by)
    AllocationParams(time_limit=0, threads=0, workers=0, seed=2**31 - 1,
                     decompose_above=0, certify=False, flow=False)
    AllocationParams(time_limit=2.5, threads=np.int64(4), seed=np.int32(7))
    assert replace(params, certify=False).certify is False


@pytest.mark.parametrize("value", ["Always", "ALWAYS", " auto", "", "yes", None, 1])
def test_an_unknown_decompose_is_refused_not_taken_as_auto(value):
    message = _refused(lambda: AllocationParams(decompose=value), "AllocationParams.decompose",
                       "只能是", "must be one of", '"auto", "always", "never"')
    assert repr(value) in message


def test_a_top_up_without_reasons_is_refused():
    """The top-up finds the units it serves by their reasons: asked for without them it would
    silently serve none."""
    _refused(lambda: AllocationParams(reasons=False), "AllocationParams.top_up", "reasons")
    assert not AllocationParams(top_up=False, reasons=False).reasons


def test_an_unknown_decompose_by_is_refused():
    _refused(lambda: AllocationParams(decompose_by="county"), "AllocationParams.decompose_by",
             "street", "district")


@pytest.mark.parametrize("value", [-1, -0.5, math.nan, math.inf, -math.inf, "10", None, True])
def test_a_time_limit_must_be_finite_seconds_not_negative(value):
    _refused(lambda: AllocationParams(time_limit=value), "AllocationParams.time_limit",
             "秒", "finite number of seconds", "0 or more (0: none)")


@pytest.mark.parametrize(("field", "value"), [
    ("threads", -1), ("threads", 1.5), ("workers", -2), ("workers", 2.0),
    ("decompose_above", 1e5), ("decompose_above", False),
])
def test_counts_are_whole_and_not_negative(field, value):
    _refused(lambda: AllocationParams(**{field: value}), f"AllocationParams.{field}",
             "整数", "whole number, 0 or more")


@pytest.mark.parametrize("value", [-1, 2**31, 0.5, "0"])
def test_a_seed_is_what_the_solvers_accept(value):
    _refused(lambda: AllocationParams(seed=value), "AllocationParams.seed",
             "0 到 2147483647", "from 0 to 2147483647")


@pytest.mark.parametrize("field", ["certify", "flow"])
@pytest.mark.parametrize("value", [0, 1, "yes", None])
def test_switches_are_true_or_false(field, value):
    _refused(lambda: AllocationParams(**{field: value}), f"AllocationParams.{field}",
             "True 或 False", "must be True or False")


def test_a_level_has_a_sense():
    Level("red", "max", np.zeros(2))
    _refused(lambda: Level("red", "maximise", np.zeros(2)), "Level.sense", '"max", "min"')
    _refused(lambda: Level("red", "max", np.zeros(2), certify="no"), "Level.certify")


@pytest.mark.parametrize(("keyword", "value", "fragment"), [
    ("time_limit", -1.0, "solve_lexicographic.time_limit"),
    ("time_limit", math.nan, "solve_lexicographic.time_limit"),
    ("threads", -1, "solve_lexicographic.threads"),
    ("seed", -3, "solve_lexicographic.seed"),
])
def test_the_lexicographic_solver_checks_its_keywords(keyword, value, fragment):
    rows = Rows()
    levels = [Level("red", "max", np.ones(1))]
    _refused(lambda: solve_lexicographic(np.zeros(1), np.ones(1), np.ones(1, bool), rows,
                                         levels, **{keyword: value}), fragment)


@pytest.mark.parametrize(("keyword", "value", "fragment"), [
    ("time_limit", 0, "more than 0"), ("time_limit", math.inf, "solve_gap.time_limit"),
    ("workers", 0, "1 or more"), ("seed", -1, "solve_gap.seed"),
    ("maximize", "max", "solve_gap.maximize"),
])
def test_the_gap_solver_checks_its_keywords(keyword, value, fragment):
    _refused(lambda: solve_gap([[1, 2]], [[1, 1]], [2], **{keyword: value}), fragment)
