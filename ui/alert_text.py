"""An alert's numbers in words (one sentence per rule of the policy's ``[alerts]``), for the
inbox: what the numbers stored with each alert say, in the chosen language."""

from __future__ import annotations

import json
from collections.abc import Mapping

from wulian.ui.common import money, percent
from wulian.ui.text import code, say


def alert_words(rule: str, numbers: dict, language: str,
                services: Mapping[str, str] | None = None,
                centres: Mapping[str, str] | None = None) -> str:
    """An alert's numbers as a sentence (the numbers as JSON when the rule is not known);
    services and centres by name when ``services`` and ``centres`` name them."""
    n = numbers
    services, centres = services or {}, centres or {}

    def colour(tier: object) -> tuple[str, str]:
        # Each language's word, for :func:`say` to put in each half of a bilingual sentence
        # (the word in both languages went into each half: "橙色 / orange家庭有 …").
        return code("tier", str(tier), "zh"), code("tier", str(tier), "en")

    facts: dict[str, object]
    key = f"alert.{rule}"
    if rule == "monitoring_overdue":
        facts = {"colour": colour(n.get("colour")), "cycle": n.get("cycle_weeks"),
                 "last": n.get("last_visit"), "weeks": n.get("weeks_since")}
        if not n.get("last_visit"):
            key += ".never"
    elif rule == "unmet":
        facts = {"colour": colour(n.get("colour")), "needs": n.get("needs"),
                 "weeks": n.get("weeks")}
    elif rule == "colour_worse":
        facts = {"before": colour(n.get("from")), "after": colour(n.get("to")),
                 "on": n.get("assessed_on"), "version": n.get("version")}
    elif rule == "fund_runout":
        facts = {"spent": money(n.get("spent", 0)), "burn": money(n.get("weekly_burn", 0)),
                 "projected": money(n.get("projected", 0)),
                 "budget": money(n.get("period_budget", 0)),
                 "weeks": n.get("weeks_until_empty")}
    elif rule == "fund_underspend":
        facts = {"spent": money(n.get("spent", 0)), "accrued": money(n.get("accrued", 0)),
                 "share": percent(n.get("share_spent", 0)), "needs": n.get("needs_waiting")}
    elif rule == "provider_declines":
        facts = {"weeks": len(n.get("weeks") or []), "tasks": n.get("tasks"),
                 "failed": n.get("declined_or_not_delivered"),
                 "share": percent(n.get("share", 0))}
    elif rule == "capacity_short":
        units = n.get("unmet_units") or {}
        facts = {"service": halves(services.get(n.get("service"), n.get("service"))),
                 "street": halves(centres.get(n.get("street"), n.get("street"))),
                 "units": " → ".join(f"{w} {float(v):,.6g}" for w, v in sorted(units.items()))}
    else:
        return json.dumps(n, ensure_ascii=False, sort_keys=True)
    return say(key, language, **facts)


def halves(name: object) -> object:
    """A name given in both languages ("助餐 / meals") as a (中文, English) pair, for
    :func:`say` to put each in its own half; any other name as it is."""
    parts = str(name).split(" / ", 1)
    return (parts[0], parts[1]) if len(parts) == 2 else name
