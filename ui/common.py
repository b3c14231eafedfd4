"""What every page shares: the language, the scenario in use, cached planning calls, tables.

Caching (so a page reload never re-solves): scenarios are cached per source, runs per input
digest + week + centre + store, the budget lab per digest + week; long work shows its progress
in ``st.status``. Nothing here builds a model: it calls ``planning/``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path

import pandas as pd
import streamlit as st

from contract import vocab
from contract.problems import Problem, report_frame
from planning import fmt
from planning.allocate import Run, run_allocation
from planning.budget import BudgetLab
from planning.generate import generate_scenario
from planning.scenario import Scenario, load_scenario
from planning.store import RunStore, store_url
from ui import text

DEMO = Path(__file__).resolve().parent.parent / "data" / "demo"
SCENARIO_KEY = "scenario_choice"
LANGUAGE_KEY = "lang"
UPLOADED_KEY = "uploaded_scenario"
RESULT_KEY = "coordinator_result"


# ----------------------------------------------------------------------------- language


def lang() -> str:
    """The language chosen in the sidebar (Chinese until the user switches)."""
    return st.session_state.get(LANGUAGE_KEY, text.DEFAULT_LANGUAGE)


def tr(key: str, **facts: object) -> str:
    """``key`` of the text table in the chosen language."""
    return text.say(key, lang(), **facts)


def colour_name(tier: str) -> str:
    return text.code("tier", tier, lang())


# ----------------------------------------------------------------------------- cached loads


@st.cache_resource(show_spinner=False)
def run_store(url: str) -> RunStore:
    return RunStore(url)


def current_store() -> RunStore:
    """The run store ($WULIAN_STORE, else runs/wulian.sqlite), one engine per URL."""
    return run_store(store_url())


@st.cache_resource(show_spinner=False)
def demo_scenario(path: str) -> Scenario:
    return load_scenario(path)


@st.cache_resource(show_spinner=False)
def tiny_scenario(seed: int = 0) -> Scenario:
    return Scenario.from_tables(generate_scenario("tiny", seed=seed), path="preset:tiny")


def scenario_choices() -> list[str]:
    choices = ["demo", "tiny"]
    if UPLOADED_KEY in st.session_state:
        choices.append("upload")
    return choices


def scenario_label(choice: str) -> str:
    if choice == "upload":
        return tr("app.scenario.upload", name=st.session_state[UPLOADED_KEY].path
                  .removeprefix("upload:"))
    return tr(f"app.scenario.{choice}")


def current_scenario() -> Scenario:
    """The scenario picked in the sidebar (the bundled demo unless the user picks another)."""
    choice = st.session_state.get(SCENARIO_KEY, "demo")
    if choice == "upload" and UPLOADED_KEY in st.session_state:
        return st.session_state[UPLOADED_KEY]
    if choice == "tiny":
        return tiny_scenario()
    return demo_scenario(str(DEMO))


def weeks_of(scenario: Scenario) -> list[str]:
    return sorted(scenario.needs["week"].unique(), reverse=True)


def current_week(scenario: Scenario) -> str | None:
    weeks = weeks_of(scenario)
    week = st.session_state.get("week")
    return week if week in weeks else (weeks[0] if weeks else None)


@st.cache_resource(show_spinner=False, max_entries=32)
def cached_run(digest: str, week: str | None, centre: str | None, url: str,
               _scenario: Scenario, _solved: list) -> Run:
    """One allocation per input digest, week, centre and store, so a reload shows it again
    without solving; ``_solved`` (not part of the key) hears whether this call solved."""
    _solved.append(True)
    return run_allocation(_scenario, week=week, centre=centre, store=run_store(url))


@st.cache_resource(show_spinner=False, max_entries=8)
def budget_lab(digest: str, week: str | None, _scenario: Scenario) -> tuple[BudgetLab,
                                                                             threading.Lock]:
    """The budget lab of a scenario, built once; the lock keeps two sessions from solving the
    same HiGHS model at the same time."""
    return BudgetLab.from_scenario(_scenario, week=week), threading.Lock()


# ----------------------------------------------------------------------------- sidebar


def sidebar() -> Scenario:
    """Language, scenario and week, shared by every page; returns the scenario in use."""
    with st.sidebar:
        st.radio(text.TEXT["app.language"][0], list(text.LANGUAGES),
                 format_func=text.LANGUAGES.get, key=LANGUAGE_KEY, horizontal=True)
        choices = scenario_choices()
        if st.session_state.get(SCENARIO_KEY) not in choices:
            st.session_state[SCENARIO_KEY] = "demo"
        # Labels are resolved now: a format_func runs later, outside this script run.
        labels = {choice: scenario_label(choice) for choice in choices}
        st.selectbox(tr("app.scenario"), choices, format_func=labels.get, key=SCENARIO_KEY)
        scenario = current_scenario()
        weeks = weeks_of(scenario)
        if st.session_state.get("week") not in weeks and weeks:
            st.session_state["week"] = weeks[0]
        st.selectbox(tr("app.week"), weeks, key="week")
        st.caption(tr("app.scenario.digest", digest=scenario.digest[:12],
                      households=fmt.count(len(scenario.households)),
                      needs=fmt.count(len(scenario.needs))))
    return scenario


# ----------------------------------------------------------------------------- tables


def formatted(frame: pd.DataFrame, formats: Mapping[str, Callable] | None = None,
              codes: Mapping[str, str] | None = None) -> pd.DataFrame:
    """A table for people: numbers through ``planning.fmt`` (``formats``: column → function),
    codes in words (``codes``: column → vocabulary kind, or ``"reason"``), headings in the
    chosen language."""
    out = frame.copy()
    for name, kind in (codes or {}).items():
        if name in out:
            words = (lambda v: text.reason(v, lang())) if kind == "reason" else \
                (lambda v, k=kind: text.code(k, v, lang()))
            out[name] = out[name].map(lambda v, w=words: w(v) if isinstance(v, str) else v)
    for name, func in (formats or {}).items():
        if name in out:
            out[name] = out[name].map(func)
    return out.rename(columns=lambda c: text.column(str(c), lang()))


def show(frame: pd.DataFrame, formats: Mapping[str, Callable] | None = None,
         codes: Mapping[str, str] | None = None, **kwargs: object) -> None:
    st.dataframe(formatted(frame, formats, codes), hide_index=True, **kwargs)


def show_problems(problems: list[Problem], key: str) -> None:
    """The validation report: every problem with table, row, column, value and hint."""
    st.error(tr("upload.problems", n=fmt.count(len(problems))))
    report = report_frame(problems)
    zh, en = report["message_zh"] + " → " + report["hint_zh"], \
        report["message_en"] + " → " + report["hint_en"]
    words = {"zh": zh, "en": en, "both": zh + " / " + en}[lang()]
    frame = pd.DataFrame({"table": report["table"], "row": report["row"],
                          "column": report["column"], "value": report["value"],
                          "code": report["code"], "message": words})
    show(frame, {"row": lambda r: "" if pd.isna(r) else str(int(r))}, key=key)


def money(value: float) -> str:
    """Yuan for people, rounded to the cent first (so -0.001 left in a fund reads ¥0)."""
    return "—" if pd.isna(value) else fmt.yuan(round(float(value), 2) + 0.0)


def percent(value: float) -> str:
    return fmt.pct(value) if pd.notna(value) else "—"


TIERS = list(vocab.TIER_ORDER)


def tier_names() -> dict[str, str]:
    """Colour code → its name in the chosen language."""
    return {t: colour_name(t) for t in TIERS}


def titles(*names: str) -> dict[str, str]:
    """Chart axis titles: column name → heading in the chosen language."""
    return {n: text.column(n, lang()) for n in names}
