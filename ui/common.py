"""What every page shares: the language, the scenario in use, cached planning calls, tables.

Caching (so a page reload never re-solves): scenarios are cached per source, runs per input
digest + week + centre + store, the budget lab per digest + week; long work shows its progress
in ``st.status``. Nothing here builds a model: it calls ``planning/``.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
import streamlit as st

from wulian.contract import vocab
from wulian.contract.problems import Problem, report_frame
from wulian.data import demo_folder
from wulian.planning import fmt, session
from wulian.planning.allocate import Run, run_allocation
from wulian.planning.budget import BudgetLab
from wulian.planning.generate import generate_scenario
from wulian.planning.register import ROWS
from wulian.planning.scenario import Scenario, load_scenario
from wulian.planning.store import RunStore, store_url
from wulian.ui import charts, text

DEMO = demo_folder()
# The tab's icon, a file of the package: an emoji or icon name makes the browser fetch an image
# from the internet on every page (docs/ui.md, "No request leaves the machine").
PAGE_ICON = str(Path(__file__).with_name("favicon.png"))
SCENARIO_KEY = "scenario_choice"
LANGUAGE_KEY = "lang"
UPLOADED_KEY = "uploaded_scenario"
RESULT_KEY = "coordinator_result"
ACTOR_KEY = "actor_name"


# ----------------------------------------------------------------------------- language


def lang() -> str:
    """The language chosen in the sidebar (Chinese until the user switches)."""
    return st.session_state.get(LANGUAGE_KEY, text.DEFAULT_LANGUAGE)


def tr(key: str, **facts: object) -> str:
    """``key`` of the text table in the chosen language."""
    return text.say(key, lang(), **facts)


def colour_name(tier: str) -> str:
    return text.code("tier", tier, lang())


def colour_fact(tier: str) -> tuple[str, str]:
    """A colour as a fact of a text (:func:`ui.text.say` puts each language's name in)."""
    return (text.code("tier", tier, "zh"), text.code("tier", tier, "en"))


def by_language(key: str) -> str:
    """A choice widget's key in the chosen language. The browser remembers such a widget's
    value by its options' labels, which change with the language: with one key, switching
    language with results on screen sent back labels that were no longer options (the plans'
    colour filter crashed with a TypeError). A key per language gives the browser a new widget;
    Chinese, the default, keeps the plain key."""
    language = lang()
    return key if language == text.DEFAULT_LANGUAGE else f"{key}.{language}"


def choose(widget: Callable, label: str, options: list, labels: Mapping, key: str,
           default: object = None, **kwargs: object):
    """A selectbox, radio or multiselect whose state is the code (or codes) chosen, kept under
    ``key + ".chosen"`` apart from the widget (whose key follows the language,
    :func:`by_language`): the choice survives language switches and page switches, and is
    never a label. ``labels`` maps each option to its words, resolved in this script run."""
    state = st.session_state
    memory = f"{key}.chosen"
    widget_key = by_language(key)
    multi = getattr(widget, "__name__", "") == "multiselect"
    remembered = state.get(memory, default)
    if multi:
        chosen = [o for o in (remembered or []) if o in options]
        if widget_key in state and not set(state[widget_key]) <= set(options):
            del state[widget_key]
        if widget_key not in state:
            kwargs["default"] = chosen
    else:
        if widget_key in state and state[widget_key] not in options:
            del state[widget_key]
        if widget_key not in state:
            kwargs["index"] = options.index(remembered) if remembered in options else 0
    value = widget(label, options, format_func=lambda o: labels.get(o, str(o)),
                   key=widget_key, **kwargs)
    state[memory] = value
    return value


# ----------------------------------------------------------------------------- cached loads


@st.cache_resource(show_spinner=False)
def run_store(url: str) -> RunStore:
    return RunStore(url)


@st.cache_resource(show_spinner=False)
def warm_process(url: str) -> bool:
    """Once per process and store, before any run: open the run store (its engine, tables and
    first connection), write a one-row table as Parquet to memory (pandas and pyarrow load
    their Parquet writer on first use; the store keeps a run's tables as Parquet) and
    validate an empty station map (Altair loads its schema on first use). These were some
    0.1–0.15 s of the first run's time after the click."""
    run_store(url)
    pd.DataFrame({"warm": [0]}).to_parquet(io.BytesIO(), index=False)
    charts.warm_up()
    return True


def current_store() -> RunStore:
    """The run store ($WULIAN_STORE, else runs/wulian.sqlite), one engine per URL."""
    return run_store(store_url())


def register_filled(url: str) -> bool:
    """Whether the store at ``url`` holds a register (one row read); ``False`` when the store
    cannot be opened, so the app still opens (and its pages say why they cannot read it)."""
    try:
        with run_store(url).engine.connect() as conn:
            return conn.execute(sa.select(ROWS.c.row_key).limit(1)).first() is not None
    except Exception:  # any failure to open the store: there is no register to show
        return False


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
    """The scenario's weeks, newest first (asked twice per script run, so cached by digest:
    a district's 8,000 needs take some 10 ms each time)."""
    return list(_weeks(scenario.digest, scenario))


@st.cache_resource(show_spinner=False, max_entries=256)
def centre_children(digest: str, parent_id: str, _scenario: Scenario) -> list[tuple[str, str]]:
    """The centres one level below ``parent_id`` as (id, name), by id
    (``planning.session.centre_children``), once per scenario and parent: the centre picker
    asks at every script run, and each asking scans every centre."""
    children = session.centre_children(_scenario, parent_id)
    return list(zip(children["centre_id"], children["name"], strict=True))


@st.cache_resource(show_spinner=False, max_entries=16)
def city_id(digest: str, _scenario: Scenario) -> str:
    """The root of the centre hierarchy (``planning.session.city_id``), once per scenario."""
    return session.city_id(_scenario)


@st.cache_resource(show_spinner=False, max_entries=16)
def _weeks(digest: str, _scenario: Scenario) -> list[str]:
    return sorted(_scenario.needs["week"].unique(), reverse=True)


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


# The columns of ``planning.session.served_needs``, in its order.
SERVED_COLUMNS = ["need_id", "household_id", "station_id", "service_id", "tier", "urgency",
                  "quantity", "served", "fraction", "money", "reason"]


def run_served(scenario: Scenario, run: Run) -> pd.DataFrame:
    """Every need of ``run`` with what it got (as ``planning.session.served_needs``).

    A run made in this process carries the optimizer's own table (``run.result.need_served``,
    which ``fill_rate_by_tier`` and the run's summary are computed from); only a run without
    it is recomputed from its output tables. Recomputing joins the unmet reasons need by need
    in Python, about 0.1 s on the district demo, right after every run.
    """
    result = getattr(run, "result", None)
    if result is not None and set(SERVED_COLUMNS) <= set(result.need_served.columns):
        return result.need_served[SERVED_COLUMNS].reset_index(drop=True)
    return session.served_needs(scenario, run.tables, run.info)


@st.cache_resource(show_spinner=False, max_entries=8)
def budget_lab(digest: str, week: str | None, _scenario: Scenario) -> tuple[BudgetLab,
                                                                             threading.Lock]:
    """The budget lab of a scenario, built once; the lock keeps two sessions from solving the
    same HiGHS model at the same time."""
    return BudgetLab.from_scenario(_scenario, week=week), threading.Lock()


@st.cache_resource(show_spinner=False, max_entries=4)
def workbook(digest: str, run_id: int, with_volunteers: bool, _scenario: Scenario,
             _run: Run, language: str = "zh") -> tuple[bytes, dict]:
    """The export of one run, built once per run (with the volunteer matching, when asked).

    Here rather than in the page script, which Streamlit executes at every rerun: a cached
    function defined there is decorated (its source read and hashed) each time."""
    # Imported here: only an export asks for the matching, and its modules (OR-Tools among
    # them) would add some 0.08 s to opening the page.
    from wulian.planning.match import run_matching

    schedules = None
    if with_volunteers and len(_scenario.volunteers):
        schedules = run_matching(_scenario, _run).schedules
    data = session.export_workbook(_scenario, _run.tables, schedules, language)
    busy = 0 if schedules is None else \
        schedules.loc[schedules["visit_id"] != "", "volunteer_id"].nunique()
    providers = session.provider_tasks(_scenario, _run.tables)["provider_id"].nunique()
    return data, {"providers": providers, "volunteers": busy, "sheets": providers + busy + 2}


# ----------------------------------------------------------------------------- sidebar


def _pick_scenario(picker: str) -> None:
    """The sidebar's scenario picker changed: keep the choice under ``SCENARIO_KEY``."""
    st.session_state[SCENARIO_KEY] = st.session_state[picker]


def sidebar(register_page: bool = False) -> Scenario | None:
    """The sidebar every page shares: the language; on the scenario's pages the scenario and
    week (returned), on the register's pages who records changes and which store is read.
    Each keeps its value while the other kind of page is shown."""
    with st.sidebar:
        st.radio(text.TEXT["app.language"][0], list(text.LANGUAGES),
                 format_func=text.LANGUAGES.get, key=LANGUAGE_KEY, horizontal=True)
        if register_page:
            st.text_input(tr("app.actor"), key=ACTOR_KEY, help=tr("app.actor.help"),
                          persist_state="session")
            st.caption(tr("app.store", url=store_url()))
            return None
        choices = scenario_choices()
        state = st.session_state
        if state.get(SCENARIO_KEY) not in choices:
            state[SCENARIO_KEY] = "demo"
        # Labels are resolved now: a format_func runs later, outside this script run.
        labels = {choice: scenario_label(choice) for choice in choices}
        # The choice lives under SCENARIO_KEY; the widget's key follows the language
        # (by_language): with one key the browser kept showing the previous language's label
        # after a switch (tests/test_ui_browser.py).
        picker = by_language(SCENARIO_KEY + ".picker")
        state[picker] = state[SCENARIO_KEY]
        st.selectbox(tr("app.scenario"), choices, format_func=labels.get, key=picker,
                     on_change=_pick_scenario, args=(picker,))
        scenario = current_scenario()
        weeks = weeks_of(scenario)
        if st.session_state.get("week") not in weeks and weeks:
            st.session_state["week"] = weeks[0]
        st.selectbox(tr("app.week"), weeks, key="week", persist_state="session")
        st.caption(tr("app.scenario.digest", digest=scenario.digest[:12],
                      households=fmt.count(len(scenario.households)),
                      needs=fmt.count(len(scenario.needs))))
    return scenario


# ----------------------------------------------------------------------------- tables


def formatted(frame: pd.DataFrame, formats: Mapping[str, Callable] | None = None,
              codes: Mapping[str, str] | None = None) -> pd.DataFrame:
    """A table for people: numbers through ``planning.fmt`` (``formats``: column → function),
    codes in words (``codes``: column → vocabulary kind, or ``"reason"``), headings in the
    chosen language. Cell by cell the same as ``frame[c].map(func)``, but each distinct value
    is formatted once (see :func:`each_distinct`)."""
    language = lang()  # once per table, not once per cell: it reads the session state
    out = frame.copy()
    for name, kind in (codes or {}).items():
        if name in out:
            words = (lambda v: text.reason(v, language)) if kind == "reason" else \
                (lambda v, k=kind: text.code(k, v, language))
            out[name] = each_distinct(out[name], lambda v, w=words: w(v) if isinstance(v, str)
                                      else v)
    for name, func in (formats or {}).items():
        if name in out:
            out[name] = each_distinct(out[name], func)
    return out.rename(columns=lambda c: text.column(str(c), language))


def each_distinct(values: pd.Series, func: Callable) -> pd.Series:
    """``values.map(func)``, calling ``func`` once per distinct value rather than per row.

    A district's plans table has thousands of rows but few distinct counts, colours and
    rates, and the ``planning.fmt`` functions are plain Python: per row they were the larger
    part of drawing the Coordinator page's results. Missing values are passed one by one, as
    they are, and so are zeros when there is a negative zero among them (-0.0 and 0.0 are one
    distinct value, but may format as "-0.0%" and "0.0%").
    """
    if values.empty:
        return values.map(func)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    # As Python objects, as ``Series.map`` hands them to ``func`` (an ``int``, not ``int64``).
    words = np.fromiter((func(u) for u in np.asarray(uniques, dtype=object)), dtype=object,
                        count=len(uniques))
    cells = np.empty(len(values), dtype=object)
    alone = codes < 0
    if values.dtype.kind == "f":
        zero = values.to_numpy() == 0
        if np.signbit(values.to_numpy()[zero]).any():
            alone |= zero
    cells[~alone] = words[codes[~alone]]
    if alone.any():
        cells[alone] = [func(v) for v in values.to_numpy(dtype=object)[alone]]
    return pd.Series(cells, index=values.index, name=values.name)


def show(frame: pd.DataFrame, formats: Mapping[str, Callable] | None = None,
         codes: Mapping[str, str] | None = None, **kwargs: object) -> None:
    st.dataframe(formatted(frame, formats, codes), hide_index=True, **kwargs)


def show_problems(problems: list[Problem], key: str, *, title: str = "upload.problems",
                  both: bool = False) -> None:
    """The validation report: every problem with table, row, column, value and hint (in the
    chosen language, or in both when ``both``)."""
    st.error(tr(title, n=fmt.count(len(problems))))
    report = report_frame(problems)
    zh, en = report["message_zh"] + " → " + report["hint_zh"], \
        report["message_en"] + " → " + report["hint_en"]
    words = {"zh": zh, "en": en, "both": zh + " / " + en}["both" if both else lang()]
    frame = pd.DataFrame({"table": report["table"], "row": report["row"],
                          "column": report["column"], "value": report["value"],
                          "code": report["code"], "message": words})
    show(frame, {"row": lambda r: "" if pd.isna(r) else str(int(r))}, key=key)


def unmet_words(cell: str, language: str, english: Mapping[str, str] | None = None) -> str:
    """A plans table's unmet cell (``planning.allocate.plans_table``: "生活补助(no_eligible_offer);
    …", the service's Chinese name and the reason code) in words in ``language``: each reason
    as :func:`ui.text.reason` says it and, in English, each service by its English name
    (``english``: Chinese name → English, when the scenario is known)."""
    items = []
    for item in str(cell).split("; "):
        name, bracket, codes = item.rpartition("(")  # the last: a name may hold brackets
        if not bracket:
            items.append(item)
            continue
        words = text.reason(codes.removesuffix(")"), language)
        if language == "en":
            items.append(f"{(english or {}).get(name, name)} ({words})")
        else:
            items.append(f"{name}({words})")
    return "; ".join(items) if cell else ""


def plans_in_words(plans: pd.DataFrame, services: pd.DataFrame | None = None) -> pd.DataFrame:
    """The plans table with its unmet column in words in the chosen language
    (:func:`unmet_words`; ``services``: the scenario's, for the services' English names), and
    the unmet needs in both languages' words and as stored, for a search in either language
    (``unmet_zh``, ``unmet_en``, ``unmet_codes``: not shown)."""
    english = None if services is None else \
        dict(zip(services["name_zh"], services["name_en"], strict=True))
    zh = each_distinct(plans["unmet"], lambda v: unmet_words(v, "zh"))
    en = each_distinct(plans["unmet"], lambda v: unmet_words(v, "en", english))
    shown = {"zh": zh, "en": en}.get(lang())
    if shown is None:  # both: each language's sentence, where they differ
        shown = pd.Series([z if z == e else f"{z} / {e}" for z, e in zip(zh, en, strict=True)],
                          index=plans.index, dtype=object)
    return plans.assign(unmet=shown, unmet_zh=zh, unmet_en=en, unmet_codes=plans["unmet"])


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
