"""收件箱 · 本周待办 — a coordinator's first look: what needs attention in their centre this week.

Open alerts (severity, what, since, the numbers in words) with their acknowledgement; the open
weeks' tasks still waiting for an answer, answered here (``cycle.record_answers``: refused with
every problem, in Chinese and English); the monitoring visits due, with their results. The
centre picker fences all of it to a street's or station's subtree.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date

import pandas as pd
import streamlit as st

from wulian.contract import vocab
from wulian.contract.problems import ValidationError
from wulian.planning import alerts as alert_rules
from wulian.planning import fmt
from wulian.planning.cycle import Answer, record_answers, week_days
from wulian.ui import register_data as R
from wulian.ui.alert_text import alert_words
from wulian.ui.common import choose, lang, money, show, show_problems, tr
from wulian.ui.text import LANGUAGES, code

FLASH_KEY = "inbox_flash"
# The fields of the answer and visit forms. The choices (status, reason, outcome, indicators)
# stand outside the ``st.form``, through ``common.choose``: each change reaches the server at
# once (a rerun that reads the register's change marker only), so after a language switch each
# shows, in the new language, the choice it will record (with fixed keys the outcome radio
# showed none and recorded "visited"; inside a form a choice not yet sent was lost). The texts,
# the date and the button stay in the form, which sends them at once: without it, a text typed
# and the button clicked at once (Chromium) recorded the visit without the new needs typed.
ANSWER_KEYS = ("answer_status", "answer_units", "answer_date", "answer_reason")
VISIT_KEYS = ("visit_outcome", "visit_date", "visit_needs", "visit_note",
              *(f"visit_{d}" for d in vocab.DEPRIVATION_COLUMNS))
REASONS = [r for r in vocab.DECLINE_REASONS if r != "no_answer"]  # no_answer: the week's close


def flash(kind: str, key: str, **facts: object) -> None:
    """A message for the next script run (after ``st.rerun``), drawn in the language then."""
    st.session_state[FLASH_KEY] = (kind, key, facts)


def show_flash() -> None:
    if FLASH_KEY not in st.session_state:
        return
    kind, key, facts = st.session_state.pop(FLASH_KEY)
    words = {k: (code(*v, lang()) if isinstance(v, tuple) else v) for k, v in facts.items()}
    getattr(st, kind)(tr(key, **words))


def forget(keys: tuple[str, ...]) -> None:
    """Forget the fields ``keys``: the widgets (in every language, ``common.by_language``) and
    the choices ``common.choose`` remembers for them."""
    for key in keys:
        for name in (key, f"{key}.chosen", *(f"{key}.{language}" for language in LANGUAGES)):
            st.session_state.pop(name, None)


# ----------------------------------------------------------------------------- alerts


def alerts_section(url: str, box: R.Inbox, centre_names: pd.Series,
                   services: Mapping[str, str]) -> None:
    frame = box.alerts
    language = lang()
    opened = frame[frame["state"] == "open"]
    head, button = st.columns([4, 1], vertical_alignment="bottom")
    head.subheader(tr("inbox.alerts", n=fmt.count(len(opened))))
    if button.button(tr("inbox.evaluate"), key="alerts_evaluate"):
        with st.spinner(tr("inbox.evaluate")):
            result = alert_rules.evaluate(R.writer(url))
        flash("success", "inbox.evaluated", week=result.week or "—", opened=result.opened,
              updated=result.updated, resolved=result.resolved)
        st.rerun()
    if opened.empty:
        st.info(tr("inbox.alerts.none"))
    else:
        if len(opened) > R.MAX_ROWS:
            st.caption(tr("inbox.more", shown=fmt.count(R.MAX_ROWS),
                          total=fmt.count(len(opened))))
            opened = opened.head(R.MAX_ROWS)
        show(alerts_table(opened, centre_names, services, language),
             codes={"severity": "severity"}, key="alerts_table")
        acknowledge_form(url, opened, language)
    acked = frame[frame["state"] == "acknowledged"]
    if len(acked):
        with st.expander(tr("inbox.alerts.acknowledged", n=fmt.count(len(acked)))):
            acked = acked.head(R.MAX_ROWS)
            table = alerts_table(acked, centre_names, services, language)
            table = table.assign(ack_by=acked["ack_by"].to_numpy(),
                                 ack_at=acked["ack_at"].str[:16].str.replace("T", " ")
                                 .to_numpy(), ack_note=acked["ack_note"].to_numpy())
            show(table, codes={"severity": "severity"}, key="alerts_acknowledged")


def alerts_table(frame: pd.DataFrame, centre_names: pd.Series,
                 services: Mapping[str, str], language: str) -> pd.DataFrame:
    title = frame["title_zh"] if language == "zh" else frame["title_en"] \
        if language == "en" else frame["title_zh"] + " / " + frame["title_en"]
    centres = centre_names.to_dict()
    words = [alert_words(rule, json.loads(numbers), language, services, centres)
             for rule, numbers in zip(frame["rule"], frame["numbers"], strict=True)]
    return pd.DataFrame({
        "severity": frame["severity"].to_numpy(), "alert": title.to_numpy(),
        "subject_id": frame["subject_id"].to_numpy(),
        "centre": frame["centre"].map(centre_names).fillna(frame["centre"]).to_numpy(),
        "since": frame["since"].to_numpy(), "words": words})


def acknowledge_form(url: str, opened: pd.DataFrame, language: str) -> None:
    title = opened["title_zh"] if language == "zh" else opened["title_en"] \
        if language == "en" else opened["title_zh"] + " / " + opened["title_en"]
    labels = {aid: f"{code('severity', sev, language)} · {t} · {subject}"
              for aid, sev, t, subject in zip(opened["alert_id"], opened["severity"], title,
                                              opened["subject_id"], strict=True)}
    with st.container(border=True):  # the choice outside the form: see ANSWER_KEYS
        st.markdown("**" + tr("inbox.ack") + "**")
        alert = choose(st.selectbox, tr("inbox.ack.alert"), list(labels), labels, "ack_alert")
        note_choice("ack_alert", alert, list(labels))
        form = st.form("ack_form", border=False)
        note = form.text_input(tr("inbox.ack.note"), key="ack_note")
        if form.form_submit_button(tr("inbox.ack.button"), key="ack_submit"):
            if submitted_for_another("ack_alert"):
                return
            try:
                alert_rules.acknowledge(R.writer(url), alert, note)
            except alert_rules.AlertError as err:
                st.error(str(err))
                return
            forget(("ack_note",))
            flash("success", "inbox.ack.done", alert=alert)
            st.rerun()


# ----------------------------------------------------------------------------- tasks


def task_labels(frame: pd.DataFrame, names: dict[str, dict[str, str]], language: str
                ) -> dict[str, str]:
    """Task id → "id · household · service (or kind) · provider", for the pickers."""
    kinds = frame["kind"].map(lambda k: code("task_kind", k, language))
    what = frame["service_id"].map(names["service"]).fillna("")
    what = what.where(what != "", kinds)
    who = frame["provider_id"].map(names["provider"]).fillna(frame["provider_id"])
    text = frame["task_id"] + " · " + frame["household_id"] + " · " + what + " · " + who
    return dict(zip(frame["task_id"], text, strict=True))


def tasks_table(frame: pd.DataFrame, names: dict[str, dict[str, str]],
                centre_names: pd.Series, visits: bool) -> pd.DataFrame:
    out = pd.DataFrame({
        "task_id": frame["task_id"], "week": frame["week"], "kind": frame["kind"],
        "household_id": frame["household_id"],
        "station": frame["station_id"].map(centre_names).fillna(frame["station_id"]),
        "tier": frame["tier"]})
    if visits:
        out = out.assign(volunteer_id=frame["volunteer_id"], slot=frame["slot"],
                         hours=frame["hours"])
    else:
        out = out.assign(
            service=frame["service_id"].map(names["service"]).fillna(frame["service_id"]),
            provider=frame["provider_id"].map(names["provider"]).fillna(frame["provider_id"]),
            units=frame["units"], unit=frame["service_id"].map(names["unit"]).fillna(""),
            cost=frame["cost"], fund_id=frame["fund_id"])
    return out.assign(status=frame["status"])


def facts(task: pd.Series, names: dict[str, dict[str, str]], centre_names: pd.Series) -> str:
    first, last = week_days(task["week"])
    what = names["service"].get(task["service_id"], "") or code("task_kind", task["kind"],
                                                              lang())
    return tr("inbox.facts", household=task["household_id"],
              station=centre_names.get(task["station_id"], task["station_id"]),
              colour=code("tier", task["tier"], lang()), what=what,
              units=f"{float(task['units']):,.6g}", week=task["week"],
              first=first.isoformat(), last=last.isoformat())


def answer_day(task: pd.Series) -> tuple[date, date, date]:
    """The week's first and last day and the default answer date (today, kept in the week)."""
    first, last = week_days(task["week"])
    return first, last, min(max(date.today(), first), last)


def pick_task(frame: pd.DataFrame, names: dict[str, dict[str, str]], key: str,
              label: str, keys: tuple[str, ...]) -> pd.Series:
    """The task picked (its form's fields are forgotten when another is picked)."""
    labels = task_labels(frame, names, lang())
    tid = choose(st.selectbox, label, list(labels), labels, key)
    note_choice(key, tid, list(labels), keys)
    return frame.set_index("task_id", drop=False).loc[tid]


def note_choice(key: str, chosen: str, options: list[str], keys: tuple[str, ...] = ()
                ) -> None:
    """Note whether the item chosen under ``key`` in the last run is gone from ``options``
    (answered elsewhere: the picker fell back to another); a form submitted in such a run
    was filled for the item gone, and :func:`submitted_for_another` refuses it. The fields
    ``keys`` are forgotten when the item changes."""
    was = st.session_state.get(key + "_for")
    st.session_state[key + "_gone"] = was is not None and was not in options
    if was != chosen:
        forget(keys)
        st.session_state[key + "_for"] = chosen


def submitted_for_another(key: str) -> bool:
    """A form submitted in a run where its item went under it: nothing recorded, said."""
    if st.session_state.get(key + "_gone"):
        st.error(tr("inbox.moved"))
        return True
    return False


def record(url: str, area: R.Scope, answer: Answer, key: str):
    """``record_answers`` for one answer, fenced to the scope; the problems when refused."""
    try:
        return record_answers(R.writer(url), [answer], centres=area.stations)
    except ValidationError as err:
        show_problems(err.problems, key, title="inbox.refused", both=True)
        return None


def tasks_section(url: str, area: R.Scope, box: R.Inbox, names: dict[str, dict[str, str]],
                  centre_names: pd.Series) -> None:
    st.subheader(tr("inbox.tasks", n=fmt.count(box.task_count)))
    if box.tasks.empty:
        st.info(tr("inbox.tasks.none"))
        return
    if box.task_count > len(box.tasks):
        st.caption(tr("inbox.more", shown=fmt.count(len(box.tasks)),
                      total=fmt.count(box.task_count)))
    show(tasks_table(box.tasks, names, centre_names, visits=False),
         {"cost": money, "units": lambda v: f"{v:,.6g}"},
         {"tier": "tier", "kind": "task_kind", "status": "task_status", "unit": "unit"},
         key="tasks_table")
    st.markdown("**" + tr("inbox.answer") + "**")
    task = pick_task(box.tasks, names, "answer_task", tr("inbox.answer.task"), ANSWER_KEYS)
    st.caption(facts(task, names, centre_names))
    first, last, today = answer_day(task)
    language = lang()
    statuses = sorted(vocab.TASK_NEXT[task["status"]], key=list(vocab.TASK_STATUSES).index)
    # No status chosen beforehand: every answer but "accepted" is final, so one click on the
    # button must not record one the coordinator did not pick.
    status_words = {"": tr("inbox.answer.pick"),
                    **{s: code("task_status", s, language) for s in statuses}}
    reasons = {"": tr("inbox.answer.none"),
               **{r: code("decline", r, language) for r in REASONS}}
    with st.container(border=True):  # the choices outside the form: see ANSWER_KEYS
        left, right = st.columns(2)
        status = choose(left.selectbox, tr("inbox.answer.status"), list(status_words),
                        status_words, "answer_status")
        reason = choose(right.selectbox, tr("inbox.answer.reason"), list(reasons), reasons,
                        "answer_reason")
        form = st.form("answer_form", border=False)
        middle, right = form.columns(2)
        units = middle.text_input(tr("inbox.answer.units"), key="answer_units",
                                  placeholder=f"{float(task['units']):,.6g}")
        day = right.date_input(tr("inbox.answer.date"), value=today, min_value=first,
                               max_value=last, key="answer_date")
        if form.form_submit_button(tr("inbox.answer.button"), key="answer_submit"):
            if submitted_for_another("answer_task"):
                return
            if not status:
                st.error(tr("inbox.answer.no_status"))
                return
            if status == "declined" and not reason:  # a decline is final: say why
                st.error(tr("inbox.answer.no_reason"))
                return
            answer = Answer(task_id=task["task_id"], status=status,
                            units_delivered=units.strip(),
                            answered_on=day.isoformat() if day else "",
                            reason=reason if status in ("declined", "not_delivered") else "",
                            source="app")
            report = record(url, area, answer, "answer_problems")
            if report is not None:
                forget(ANSWER_KEYS)
                if report.changed:
                    flash("success", "inbox.answer.done", task=task["task_id"],
                          status=("task_status", status))
                else:
                    flash("info", "inbox.answer.same", task=task["task_id"])
                st.rerun()


# ----------------------------------------------------------------------------- visits


def visits_section(url: str, area: R.Scope, box: R.Inbox, names: dict[str, dict[str, str]],
                   centre_names: pd.Series) -> None:
    st.subheader(tr("inbox.visits", n=fmt.count(box.visit_count)))
    if box.visits.empty:
        st.info(tr("inbox.visits.none"))
        return
    if box.visit_count > len(box.visits):
        st.caption(tr("inbox.more", shown=fmt.count(len(box.visits)),
                      total=fmt.count(box.visit_count)))
    show(tasks_table(box.visits, names, centre_names, visits=True),
         {"hours": lambda v: f"{v:,.6g}"},
         {"tier": "tier", "kind": "task_kind", "status": "task_status", "slot": "slot"},
         key="visits_table")
    st.markdown("**" + tr("inbox.visit") + "**")
    task = pick_task(box.visits, names, "visit_task", tr("inbox.visit.task"), VISIT_KEYS)
    st.caption(facts(task, names, centre_names))
    first, last, today = answer_day(task)
    language = lang()
    now = R.household(url, task["household_id"])
    with st.container(border=True):  # the choices outside the form: see ANSWER_KEYS
        outcomes = {o: code("outcome", o, language) for o in vocab.VISIT_OUTCOMES}
        outcome = choose(st.radio, tr("inbox.visit.outcome"), list(outcomes), outcomes,
                         "visit_outcome", horizontal=True)
        st.markdown(tr("inbox.visit.indicators"))
        observed = {}
        columns = st.columns(4)
        for i, column in enumerate(vocab.DEPRIVATION_COLUMNS):
            words = {"": tr("inbox.visit.unobserved", value=now.get(column, "—")),
                     "1": tr("inbox.visit.deprived"), "0": tr("inbox.visit.fine")}
            dimension = code("dimension", column.removeprefix("d_"), language)
            observed[column] = choose(  # the dimension in words, no code
                columns[i % 4].selectbox, dimension, list(words), words, f"visit_{column}")
        form = st.form("visit_form", border=False)
        day = form.date_input(tr("inbox.answer.date"), value=today, min_value=first,
                              max_value=last, key="visit_date")
        services = ", ".join(f"{s} {n}" for s, n in names["service"].items())
        needs = form.text_input(tr("inbox.visit.needs"), key="visit_needs",
                                help=tr("inbox.visit.needs.help", services=services))
        note = form.text_area(tr("inbox.visit.note"), key="visit_note", height=68)
        if form.form_submit_button(tr("inbox.visit.button"), key="visit_submit"):
            if submitted_for_another("visit_task"):
                return
            made = outcome == "done"
            answer = Answer(
                task_id=task["task_id"], status="delivered" if made else "not_delivered",
                answered_on=day.isoformat() if day else "",
                indicators={k: v for k, v in observed.items() if v} if made else {},
                new_needs=needs.strip() if made else "", note=note, source="app")
            report = record(url, area, answer, "visit_problems")
            if report is not None:
                forget(VISIT_KEYS)
                flash("success", "inbox.visit.done", task=task["task_id"],
                      outcome=("outcome", outcome), needs=report.needs_raised)
                st.rerun()


# ----------------------------------------------------------------------------- page


def page() -> None:
    st.title(tr("page.inbox"))
    opened = R.open_register()
    if opened is None:
        return
    url, mark = opened
    show_flash()
    table = R.centres(url, mark)
    centre = R.centre_picker(table)
    area = R.scope(url, mark, centre)
    st.caption(tr("reg.scope", name=area.name, stations=fmt.count(area.station_count))
               if centre else tr("reg.scope.all", stations=fmt.count(area.station_count)))
    box = R.inbox(url, mark, centre)
    if box.open_weeks:
        st.caption(tr("inbox.weeks", weeks=", ".join(
            w if c == "*" else f"{w} ({c})" for w, c in box.open_weeks)))
    else:
        st.info(tr("inbox.noweek"))
    centre_names = table.set_index("centre_id")["name"]
    names = R.names(url, mark, lang())
    alerts_section(url, box, centre_names, names["service"])
    tasks_section(url, area, box, names, centre_names)
    visits_section(url, area, box, names, centre_names)


page()
