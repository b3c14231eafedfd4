"""协调员 · 每周分配 — the coordinator's weekly run: pick, run, review, pin, compare, export."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import streamlit as st
from streamlit.runtime.scriptrunner import add_script_run_ctx, get_script_run_ctx

from wulian.contract.problems import ValidationError
from wulian.optimizer.pins import PinError
from wulian.planning import fmt
from wulian.planning import session as S
from wulian.planning.allocate import Run
from wulian.planning.scenario import Scenario
from wulian.planning.store import diff_runs, store_url
from wulian.ui import charts, signin
from wulian.ui.common import (
    RESULT_KEY,
    SCENARIO_KEY,
    TIERS,
    cached_run,
    centre_children,
    choose,
    city_id,
    colour_fact,
    colour_name,
    current_scenario,
    current_store,
    current_week,
    lang,
    money,
    percent,
    plans_in_words,
    run_served,
    scenario_label,
    show,
    show_problems,
    titles,
    tr,
    warm_process,
    workbook,
)
from wulian.ui.data_upload import upload_box
from wulian.ui.text import code, pick

PINS_KEY = "pins"
PINS_FOR_KEY = "pins_scenario"
RUN_REQUEST_KEY = "run_requested"
RUNNING_KEY = "coordinator_running"  # a run started and not yet shown (see run_now)
EXPORT_KEY = "export"

log = logging.getLogger("wulian.ui")


CENTRE_PARAM = "centre"  # the URL's query parameter: a reload keeps the centre shown


def centre_picker(scenario: Scenario) -> str | None:
    """District → street → station, each list following the one above; the deepest chosen
    centre (``None``: the whole network). The choice is kept by code apart from the widgets
    (:func:`ui.common.choose`), so a language or page switch keeps it, and in the URL
    (``?centre=``), so a reload does."""
    restore_centre(scenario)
    parent: str | None = city_id(scenario.digest, scenario)
    chosen = None
    columns = st.columns(3)
    for column, level in zip(columns, ("district", "street", "station"), strict=True):
        # Labels are resolved now: a format_func runs later, outside this script run.
        labels = {"": tr("centre.all")}
        if parent:
            labels.update((c, f"{n} · {c}") for c, n in
                          centre_children(scenario.digest, parent, scenario))
        value = choose(column.selectbox, tr(f"centre.{level}"), list(labels), labels,
                       f"centre_{level}", "", disabled=parent is None)
        parent = value or None
        chosen = value or chosen
    chosen = signin.fenced(chosen, scenario.centres)  # a coordinator's subtree only
    if chosen:
        st.query_params[CENTRE_PARAM] = chosen
    elif CENTRE_PARAM in st.query_params:
        del st.query_params[CENTRE_PARAM]
    return chosen


def restore_centre(scenario: Scenario) -> None:
    """Once per session: the centre named in the URL (a reload, a link), as the pickers'
    remembered choice, level by level from the district down."""
    state = st.session_state
    wanted = st.query_params.get(CENTRE_PARAM)
    if state.get("centre_restored") or not wanted:
        state["centre_restored"] = True
        return
    state["centre_restored"] = True
    centres = scenario.centres.set_index("centre_id")
    if wanted not in centres.index:
        return
    chain = []
    centre: str | None = wanted
    while centre and centre in centres.index and centres.at[centre, "level"] != "city":
        chain.append((centres.at[centre, "level"], centre))
        parent = centres.at[centre, "parent_id"]
        centre = parent if isinstance(parent, str) and parent else None
    for level, centre_id in chain:
        if level in ("district", "street", "station"):
            state[f"centre_{level}.chosen"] = centre_id


def scenario_to_run(scenario: Scenario) -> Scenario | None:
    """The scenario with the session's pins, or ``None`` after showing why they are bad."""
    pins = st.session_state.get(PINS_KEY, [])
    if not pins:
        return scenario
    try:
        return S.with_pins(scenario, pd.DataFrame(pins))
    except ValidationError as err:
        st.error(tr("coord.pin.invalid"))
        show_problems(err.problems, "pin_problems")
        return None


def run_now(scenario: Scenario, week: str | None, centre: str | None, chosen: str) -> None:
    """Start the run (or fetch it from the cache) in a thread and show it when it ends.

    The run is kept in the session while it runs (``RUNNING_KEY``): a page or language switch
    stops this script run, not the thread, and the page shows the run when it is opened again
    (:func:`await_run`), rather than losing a run the store holds. ``chosen`` is the digest
    of the sidebar's scenario (``scenario`` may add the pins to it)."""
    solved: list = []
    # The run starts before the status box: Streamlit pauses 50 ms when it opens one (so the
    # browser draws it before its first update), and the solve need not wait for that. The
    # thread gets this session's context, as Streamlit asks of threads that call it (the cache).
    pool = ThreadPoolExecutor(1, thread_name_prefix="wulian-run",
                              initializer=add_script_run_ctx,
                              initargs=(None, get_script_run_ctx()))
    job = pool.submit(cached_run, scenario.digest, week, centre, store_url(), scenario, solved)
    pool.shutdown(wait=False)  # the thread ends once the run is done; its result is in ``job``
    st.session_state[RUNNING_KEY] = {"job": job, "solved": solved, "scenario": scenario,
                                     "chosen": chosen, "week": week, "centre": centre,
                                     "scenario_choice": st.session_state.get(SCENARIO_KEY, "demo"),
                                     "pins": list(st.session_state.get(PINS_KEY, []))}
    await_run()


def scenario_name(result: dict) -> str:
    """The scenario of a result in words (an upload by its digest: another may be uploaded
    since)."""
    choice = result["scenario_choice"]
    return scenario_label(choice) if choice != "upload" else result["scenario"].digest[:12]


def await_run() -> None:
    """Wait for the run started in this session, with progress, and keep its result."""
    running = st.session_state[RUNNING_KEY]
    with st.status(tr("coord.running"), expanded=False) as status:
        st.write(tr("coord.step.load", digest=running["scenario"].digest[:12]))
        st.write(tr("coord.step.solve"))
        try:
            run = running["job"].result()
        except PinError as err:
            st.session_state.pop(RUNNING_KEY, None)
            status.update(label=tr("coord.pin.error"), state="error", expanded=True)
            for problem in err.problems:  # the failed condition, in the chosen language
                st.write(f"- {pick((problem.zh, problem.en), lang())}")
            return
        except Exception:
            st.session_state.pop(RUNNING_KEY, None)  # not waited for again at the next run
            raise
        status.update(label=tr("coord.done", status=(code("status", run.info["status"], "zh"),
                                                     code("status", run.info["status"], "en")),
                               seconds=f"{run.info['seconds']['wall']:.1f} s"),
                      state="complete")
    st.session_state.pop(RUNNING_KEY, None)
    st.session_state[RESULT_KEY] = {"run": run, "scenario": running["scenario"],
                                    "chosen": running["chosen"], "week": running["week"],
                                    "scenario_choice": running["scenario_choice"],
                                    "centre": running["centre"],
                                    "cached": not running["solved"], "pins": running["pins"]}
    st.session_state.pop(EXPORT_KEY, None)


def fill_metrics(served: pd.DataFrame) -> None:
    rates = S.fill_by_tier(served)
    counts = served.groupby("tier").size().reindex(TIERS, fill_value=0)
    st.subheader(tr("coord.fill"))
    for column, tier in zip(st.columns(len(TIERS)), TIERS, strict=True):
        column.metric(tr("coord.fill.metric", colour=colour_fact(tier)), percent(rates[tier]),
                      help=tr("coord.fill.help", needs=fmt.count(counts[tier])), border=True)


def money_and_unmet(scenario: Scenario, run: Run) -> None:
    left, right = st.columns(2)
    with left:
        st.subheader(tr("coord.money"))
        funds = S.funds_used(run.tables)
        names = scenario.funds.set_index("fund_id")["name"]
        funds.insert(1, "name", funds["fund_id"].map(names))
        show(funds, {"budget": money, "used": money, "left": money,
                     "marginal_value": lambda v: f"{v * 10_000:,.2f}"},
             {"marginal_level": "tier"}, key="money_table")
    with right:
        st.subheader(tr("coord.unmet"))
        reasons = S.unmet_reasons(run.tables)
        frame = pd.DataFrame({"reason": reasons.index, "count": reasons.to_numpy()})
        show(frame, {"count": fmt.count}, {"reason": "reason"}, key="unmet_table")


def station_map(scenario: Scenario, served: pd.DataFrame) -> None:
    st.subheader(tr("coord.map"))
    stations = S.station_fill(scenario, served)
    st.altair_chart(charts.station_map(stations, titles("lon", "lat", "fill_rate", "needs",
                                                       "name", "street")), width="stretch")
    with st.expander(tr("coord.map.table")):
        show(stations.drop(columns=["lat", "lon"]),
             {"needs": fmt.count, "fill_rate": percent, "red_fill_rate": percent},
             key="station_table")


def plans_table(scenario: Scenario, run: Run) -> pd.DataFrame:
    """The searchable household plans (what is unmet in words in the chosen language; the
    search finds either language's words, or the reason's code); returns the rows shown."""
    st.subheader(tr("coord.plans"))
    left, right = st.columns([3, 2])
    query = left.text_input(tr("coord.search"), key="plan_search").strip()
    names = {t: colour_name(t) for t in TIERS}
    tiers = choose(right.multiselect, tr("coord.tier.filter"), list(TIERS), names,
                   "plan_tiers", list(TIERS))
    plans = plans_in_words(S.plans_for_reading(run.plans), scenario.services)
    shown = plans[plans["tier"].isin(tiers)]
    if query:
        haystack = shown[["household_id", "station_id", "package", "unmet_zh", "unmet_en",
                          "unmet_codes"]].agg(" ".join, axis=1)
        shown = shown[haystack.str.contains(query, case=False, regex=False)]
    shown = shown.drop(columns=["unmet_zh", "unmet_en", "unmet_codes"])
    st.caption(tr("coord.plans.count", shown=fmt.count(len(shown)), total=fmt.count(len(plans))))
    show(shown, {"needs": fmt.count, "fully_served": fmt.count, "fill_rate": percent,
                 "money": money}, {"tier": "tier"}, key="plans_table")
    return shown


def household_view(scenario: Scenario, run: Run, served: pd.DataFrame,
                   shown: pd.DataFrame) -> None:
    labels = {"": tr("coord.household.none"), **{h: h for h in shown["household_id"]}}
    household = st.selectbox(tr("coord.household"), list(labels), key="household",
                             format_func=labels.get)
    if not household:
        return
    tier = scenario.households.set_index("household_id").at[household, "tier"]
    st.markdown("**" + tr("coord.household.title", household=household,
                          colour=colour_fact(tier)) + "**")
    detail = S.household_detail(scenario, served, run.allocations, household)
    service = detail["service_zh"] if st.session_state.get("lang") != "en" else \
        detail["service_en"]
    detail = detail.assign(service=service).drop(columns=["service_zh", "service_en",
                                                          "service_id", "fraction"])
    # What is short and why first: the reason stood last, off the screen of a laptop.
    show(detail[["need_id", "service", "reason", "quantity", "served", "unit", "who",
                 "linkage", "units_from_source", "cost", "fund_id", "urgency", "source_id"]],
         {"quantity": fmt.count, "served": fmt.count, "units_from_source": fmt.count,
          "cost": money}, {"unit": "unit", "linkage": "linkage", "reason": "reason"},
         key="household_table")
    pin_form(scenario, detail)


def pin_form(scenario: Scenario, detail: pd.DataFrame) -> None:
    """Pin a need of the open household to an offer or a volunteer of its street: only the
    sources the model would accept are offered, each with its capacity and cost; those held
    back are named with the condition that fails."""
    st.markdown("**" + tr("coord.pin") + "**")
    needs = list(dict.fromkeys(detail["need_id"]))
    a, b, c = st.columns([2, 3, 1])
    need = a.selectbox(tr("coord.pin.need"), needs, key="pin_need")
    sources = S.pin_sources(scenario, need)
    offered = sources[sources["accepted"]].set_index("source_id")
    unit = detail.loc[detail["need_id"] == need, "unit"].iloc[0]
    unit_words = code("unit", unit, lang())
    # Labels are resolved now: a format_func runs later, outside this script run.
    labels = {sid: tr("coord.pin.label", label=row.label, capacity=fmt.count(row.capacity),
                      unit=unit_words, cost=money(row.unit_cost))
              if row.kind == "offer" else tr("coord.pin.label.volunteer", label=row.label,
                                             hours=fmt.count(row.capacity))
              for sid, row in offered.iterrows()}
    kinds = offered["kind"].to_dict()
    source = b.selectbox(tr("coord.pin.source"), list(labels), key="pin_source",
                         format_func=labels.get)
    quantity = float(detail.loc[detail["need_id"] == need, "quantity"].iloc[0])
    most = float(offered.at[source, "most"]) if source in offered.index else quantity
    # One field per need: a 4-hour need does not inherit the 750.92 yuan of the one before.
    c.number_input(tr("coord.pin.units"), min_value=0.01, max_value=max(most, 0.01),
                   value=max(min(1.0, most), 0.01), key=f"pin_units.{need}",
                   help=tr("coord.pin.most", most=fmt.count(most), unit=unit_words))
    held = sources[~sources["accepted"]]
    if len(held):
        why = held["why_en"] if lang() == "en" else held["why_zh"] if lang() == "zh" else \
            held["why_zh"] + " / " + held["why_en"]
        st.caption(tr("coord.pin.held", sources="; ".join(
            f"{sid}: {w}" for sid, w in zip(held["source_id"], why, strict=True))))
    st.button(tr("coord.pin.add"), key="pin_add", disabled=source is None, on_click=_add_pin,
              args=(kinds,))


def _add_pin(kinds: dict[str, str]) -> None:
    """Add the pin the form describes (a callback, so the pins list above the form shows it
    in the same rerun)."""
    state = st.session_state
    source, need = state["pin_source"], state["pin_need"]
    pin = {"need_id": need, "offer_id": "", "volunteer_id": "",
           "units": float(state[f"pin_units.{need}"]), "slot": ""}
    pin["offer_id" if kinds[source] == "offer" else "volunteer_id"] = source
    state[PINS_KEY] = [*state.get(PINS_KEY, []), pin]


def pins_panel(result: dict | None) -> None:
    """The session's pins, whether the shown run kept them, and the re-run button."""
    pins = st.session_state.get(PINS_KEY, [])
    if not pins:
        return
    st.markdown("**" + tr("coord.pin.list") + "**")
    frame = pd.DataFrame(pins)
    if result is not None and result.get("pins") == pins:
        # The run shown was made with exactly these pins: say whether it kept them.
        scenario, run = result["scenario"], result["run"]
        frame = S.pins_kept(frame, run.allocations, scenario.volunteers, scenario.hierarchy)
        missed = int((~frame["kept"]).sum())
        if missed:
            st.warning(tr("coord.pin.notkept", n=missed))
        else:
            st.success(tr("coord.pin.kept", n=len(frame)))
    show(frame, {"units": fmt.count, "units_given": fmt.count,
                 "kept": lambda k: tr("misc.yes") if k else tr("misc.no")}, key="pins_table")
    left, right = st.columns(2)
    right.button(tr("coord.pin.clear"), key="pin_clear", on_click=_clear_pins)
    left.button(tr("coord.pin.rerun"), key="pin_rerun", type="primary", on_click=_request_run)


def _clear_pins() -> None:
    st.session_state[PINS_KEY] = []


def _request_run() -> None:
    """A callback: the run happens at the top of the next script run, so everything drawn
    below it (pins kept, results) is already the new run's."""
    st.session_state[RUN_REQUEST_KEY] = True


def compare_previous(run: Run) -> None:
    with st.expander(tr("coord.compare")):
        old = current_store().previous(run.info["run_id"])
        if old is None:
            st.info(tr("coord.compare.none"))
            return
        changes = diff_runs(old, run)
        counts = changes["direction"].value_counts()
        st.write(tr("coord.compare.counts", old=old.run_id, new=run.info["run_id"],
                    gained=counts.get("gained", 0), lost=counts.get("lost", 0),
                    moved=counts.get("moved", 0), new_hh=counts.get("new", 0),
                    gone=counts.get("gone", 0)))
        show(changes[["household_id", "tier", "direction", "fill_before", "fill_after",
                      "package_before", "package_after", "why"]],
             {"fill_before": percent, "fill_after": percent},
             {"tier": "tier", "direction": "direction"}, key="diff_table")


def export_panel(scenario: Scenario, run: Run) -> None:
    """The workbook: providers' task lists and the unmet list at once; the volunteers' weeks
    need the volunteer matching, which takes minutes on a whole district, so it is asked for."""
    st.subheader(tr("coord.export"))
    run_id = run.info["run_id"]
    ready = st.session_state.get(EXPORT_KEY)
    left, right = st.columns(2)
    fast = left.button(tr("coord.export.prepare"), key="export_prepare")
    full = right.button(tr("coord.export.prepare.match"), key="export_prepare_match")
    if fast or full:
        with st.status(tr("coord.export.building.match" if full else
                          "coord.export.building")) as status:
            data, counts = workbook(scenario.digest, run_id, full, scenario, run, lang())
            status.update(label=tr("coord.export.done"), state="complete")
        st.session_state[EXPORT_KEY] = ready = (run_id, data, counts)
    if ready is None or ready[0] != run_id:
        return
    _, data, counts = ready
    st.caption(tr("coord.export.ready", **{k: fmt.count(v) for k, v in counts.items()}))
    st.download_button(tr("coord.export.download"), data, file_name=f"wulian-run-{run_id}.xlsx",
                       mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                       key="export_download", on_click="ignore")


def warm_up(scenario: Scenario) -> None:
    """Pay, while the coordinator reads the page, what the first run would otherwise pay after
    the click: the scenario's centre tree (the run's input and the map use it) and, once per
    process, the run store's connection, the first Parquet write and the chart schema
    (:func:`ui.common.warm_process`). Nothing here solves, and nothing is stored."""
    # A cached property: computed here and kept on the scenario. (Assigned, because Streamlit's
    # "magic" would draw a bare expression on the page.)
    _ = scenario.hierarchy
    try:
        warm_process(store_url())
    except Exception:  # only a head start: the run itself reports a store it cannot open
        log.warning("could not prepare the run store and charts ahead of a run", exc_info=True)


def results(result: dict, chosen: tuple[str, str | None, str | None]) -> None:
    """The run kept in the session; ``chosen``: the sidebar's scenario (its digest), week and
    the centre picked now, which the results are said to be out of date against."""
    run, scenario = result["run"], result["scenario"]
    info = run.info
    centre = result["centre"]
    centres = scenario.centres.set_index("centre_id")
    where = centres.at[centre, "name"] if centre in centres.index else tr("centre.all")
    st.header(tr("coord.result", where=where, run_id=info["run_id"],
                 status=(code("status", info["status"], "zh"),
                         code("status", info["status"], "en"))))
    if centre in centres.index:
        scope = tr("coord.scope.centre", name=f"{where} · {centre}",
                   level=code("level", centres.at[centre, "level"], lang()))
        basis = tr("coord.basis.held", run=info["held_run"]) if info.get("held_run") else \
            tr("coord.basis.alone")
        st.info(f"{scope}。{basis}" if lang() == "zh" else f"{scope}. {basis}")
    else:
        st.caption(tr("coord.scope.all"))
    st.caption(f"{result['week'] or ''} · {scenario.digest[:12]} · "
               f"{info['seconds']['wall']:.1f} s")
    if "proof" in info:  # which levels are proven, the gap of each that is not
        st.caption(pick((info["proof"]["zh"], info["proof"]["en"]), lang()))
    if result["cached"]:
        st.caption(tr("coord.cached", run_id=info["run_id"]))
    if (result["chosen"], result["week"], result["centre"]) != chosen:
        st.warning(tr("coord.other", scenario=scenario_name(result), week=result["week"] or "—",
                      centre=f"{where} · {centre}" if centre in centres.index else where))
    elif result.get("pins") != st.session_state.get(PINS_KEY, []):
        st.warning(tr("coord.stale"))
    served = run_served(scenario, run)
    fill_metrics(served)
    money_and_unmet(scenario, run)
    station_map(scenario, served)
    shown = plans_table(scenario, run)
    household_view(scenario, run, served, shown)
    compare_previous(run)
    export_panel(scenario, run)


def page() -> None:
    st.title(tr("page.coordinator"))
    scenario = current_scenario()
    if st.session_state.get(PINS_FOR_KEY) != scenario.digest:
        # Pins name needs and offers of one scenario; another scenario starts without them.
        st.session_state[PINS_KEY] = []
        st.session_state[PINS_FOR_KEY] = scenario.digest
    with st.expander(tr("upload.title")):
        upload_box("coord")
    week = current_week(scenario)
    centre = centre_picker(scenario)
    st.button(tr("coord.run"), type="primary", key="run", on_click=_request_run)
    if st.session_state.pop(RUN_REQUEST_KEY, False):
        pinned = scenario_to_run(scenario)
        if pinned is not None:
            run_now(pinned, week, centre, scenario.digest)
    elif RUNNING_KEY in st.session_state:  # started before a page or language switch
        await_run()
    result = st.session_state.get(RESULT_KEY)
    pins_panel(result)
    if result is None:
        st.info(tr("coord.none"))
    else:
        results(result, (scenario.digest, week, centre))
    # Last, so the page is drawn before it; once per scenario and process after that.
    warm_up(scenario)


page()
