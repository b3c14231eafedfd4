"""The colour policy: Alkire–Foster weights and cut-off, four-colour thresholds, flag rules and
monitoring cycles, read from a TOML file (policy is data, not code; DESIGN.md §6).

A :class:`Policy` checks itself when it is built, so a policy object that exists is a valid
one. A bad file raises :class:`PolicyError` (a ``ValueError``) listing **every** problem, each
with the key it concerns, what is wrong and how to fix it, in Chinese and English.

The packaged default lives in ``demand/default_policy.toml``; its comments explain the choice
of each number.
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from wulian.contract import vocab
from wulian.contract.problems import closest

#: Tolerance of the check that the weights sum to 1.
WEIGHT_SUM_TOLERANCE = 1e-9

#: Monitoring cycle per colour in weeks when the policy file does not set one: red weekly,
#: orange fortnightly, yellow monthly, green quarterly (DESIGN.md §6).
DEFAULT_MONITORING_WEEKS: Mapping[str, int] = MappingProxyType(
    {"red": 1, "orange": 2, "yellow": 4, "green": 13}
)

#: Quarterly plan (``[quarter]``): new needs per week as a share of the snapshot week's needs of
#: each colour, share of a week's unserved needs still open the next week, and the hours one
#: monitoring visit takes (planning/quarter.py; default_policy.toml explains the numbers).
DEFAULT_ARRIVAL_RATE: Mapping[str, float] = MappingProxyType(
    {"red": 1.0, "orange": 1.0, "yellow": 1.0, "green": 1.0}
)
DEFAULT_CARRY_FORWARD: Mapping[str, float] = MappingProxyType(
    {"red": 1.0, "orange": 1.0, "yellow": 1.0, "green": 1.0}
)
DEFAULT_MONITORING_HOURS = 1.0

#: Colours that take a score threshold; green is everything below the yellow threshold.
THRESHOLD_TIERS: tuple[str, ...] = vocab.TIER_ORDER[:-1]

_TOP_KEYS = (
    "name",
    "version",
    "description",
    "k",
    "weights",
    "thresholds",
    "flags",
    "monitoring_weeks",
    "quarter",
    "cycle",
    "alerts",
)
_QUARTER_KEYS = ("arrival_rate", "carry_forward", "monitoring_hours")
_REQUIRED_TOP_KEYS = ("name", "version", "k", "weights", "thresholds")
_FLAG_KEYS = ("name", "all_of", "at_least", "zh", "en")
_REQUIRED_FLAG_KEYS = ("name", "all_of", "at_least")
_DEFAULT_RESOURCE = "default_policy.toml"


@dataclass(frozen=True)
class PolicyProblem:
    """One problem in a policy: the key it concerns, what is wrong, and how to fix it."""

    key: str
    zh: str
    en: str
    hint_zh: str
    hint_en: str

    def render(self) -> str:
        """The problem as two lines, Chinese then English."""
        return f"  [{self.key}] {self.zh};{self.hint_zh}\n  [{self.key}] {self.en}; {self.hint_en}"


class PolicyError(ValueError):
    """A policy with problems; it carries every problem found, never just the first.

    Parameters
    ----------
    problems
        The problems found.
    source
        Where the policy came from (a file path), for the message; may be empty.
    """

    def __init__(self, problems: Sequence[PolicyProblem], source: str = ""):
        self.problems = list(problems)
        self.source = source
        where = f" ({source})" if source else ""
        head = (
            f"策略无效{where}:{len(self.problems)} 个问题 / "
            f"invalid policy{where}: {len(self.problems)} problem(s)"
        )
        super().__init__("\n".join([head, *(p.render() for p in self.problems)]))

    @property
    def keys(self) -> list[str]:
        """The keys the problems concern, in the order found."""
        return [p.key for p in self.problems]


@dataclass(frozen=True)
class FlagRule:
    """A flag rule: a household that has *all* of ``all_of`` gets at least colour ``at_least``.

    Flags only ever raise a colour (towards red); they never lower the colour the score gives.

    Parameters
    ----------
    name
        Short code of the rule, unique in the policy; reported in ``colour()``'s ``flag``
        column so a coordinator sees why a household is, say, red.
    all_of
        Category codes (``vocab.CATEGORIES``) that must all be present. Stored in the
        vocabulary's order, so the order written in the file does not matter.
    at_least
        The least severe colour the rule allows (``vocab.TIERS``).
    zh, en
        Optional display descriptions.
    """

    name: str
    all_of: tuple[str, ...]
    at_least: str
    zh: str = ""
    en: str = ""

    def __post_init__(self) -> None:
        # Canonical order so that two files stating the same rule give the same digest.
        order = {c: i for i, c in enumerate(vocab.CATEGORIES)}
        cats = tuple(sorted(set(self.all_of), key=lambda c: (order.get(c, len(order)), c)))
        object.__setattr__(self, "all_of", cats)

    def to_dict(self) -> dict[str, Any]:
        """The rule as plain data (TOML/JSON-ready)."""
        return {
            "name": self.name,
            "all_of": list(self.all_of),
            "at_least": self.at_least,
            "zh": self.zh,
            "en": self.en,
        }


@dataclass(frozen=True)
class QuarterRates:
    """The quarterly plan's demand rates (the policy's ``[quarter]`` section).

    Parameters
    ----------
    arrival_rate
        Per colour, new needs per week as a share of the snapshot week's needs of that colour
        (with the snapshot's mix of services, quantities and urgencies); ≥ 0. Colours left
        out take ``DEFAULT_ARRIVAL_RATE``.
    carry_forward
        Per colour, the share of a week's unserved needs still open the next week, in [0, 1].
        Colours left out take ``DEFAULT_CARRY_FORWARD``.
    monitoring_hours
        Volunteer hours one monitoring visit takes, > 0.

    Raises
    ------
    PolicyError
        When a value is invalid (every problem is listed).
    """

    arrival_rate: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_ARRIVAL_RATE))
    carry_forward: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_CARRY_FORWARD)
    )
    monitoring_hours: float = DEFAULT_MONITORING_HOURS

    def __post_init__(self) -> None:
        problems = _check_quarter(self.arrival_rate, self.carry_forward, self.monitoring_hours)
        if problems:
            raise PolicyError(problems)
        freeze = object.__setattr__
        for name, default in (("arrival_rate", DEFAULT_ARRIVAL_RATE),
                              ("carry_forward", DEFAULT_CARRY_FORWARD)):
            given = {**default, **getattr(self, name)}
            freeze(self, name,
                   MappingProxyType({t: float(given[t]) for t in vocab.TIER_ORDER}))
        freeze(self, "monitoring_hours", float(self.monitoring_hours))

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def to_dict(self) -> dict[str, Any]:
        """The rates as plain data (TOML/JSON-ready)."""
        return {"arrival_rate": dict(self.arrival_rate),
                "carry_forward": dict(self.carry_forward),
                "monitoring_hours": self.monitoring_hours}


@dataclass(frozen=True)
class CycleRules:
    """The weekly cycle's rules (the policy's ``[cycle]`` section; docs/cycle.md).

    Parameters
    ----------
    urgency_step_weeks
        A need carried forward gains one urgency level every this many weeks it waits (up to
        3, the most urgent); 0: waiting never raises urgency.
    expire_weeks
        A need still open after being carried this many weeks is closed as expired; 0: never.
    fund_period_weeks
        Weeks in a fund's budget period: a fund's weekly ``budget`` accrues week by week over
        the period, and what a week leaves unspent stays available later in the period.

    Raises
    ------
    PolicyError
        When a value is not a whole number in its range.
    """

    urgency_step_weeks: int = 2
    expire_weeks: int = 0
    fund_period_weeks: int = 13

    def __post_init__(self) -> None:
        problems = _check_whole(self.to_dict(), "cycle", _CYCLE_MINIMUM)
        if problems:
            raise PolicyError(problems)

    def to_dict(self) -> dict[str, Any]:
        return {"urgency_step_weeks": self.urgency_step_weeks,
                "expire_weeks": self.expire_weeks,
                "fund_period_weeks": self.fund_period_weeks}


_CYCLE_MINIMUM = {"urgency_step_weeks": 0, "expire_weeks": 0, "fund_period_weeks": 1}


#: Early-warning rules (预警, ``[alerts]``): each rule's defaults — severity, its Chinese and
#: English name, and its thresholds (docs/alerts.md explains each rule).
ALERT_DEFAULTS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "monitoring_overdue": {"severity": "high", "zh": "巡查逾期", "en": "monitoring overdue",
                           "grace_weeks": 0},
    "unmet": {"severity": "high", "zh": "需求连续未满足", "en": "need unmet week after week",
              "weeks": 2, "colours": ["red", "orange"]},
    "colour_worse": {"severity": "medium", "zh": "颜色变差", "en": "colour worsened"},
    "fund_runout": {"severity": "high", "zh": "基金预计提前用尽",
                    "en": "fund projected to run out before its period ends"},
    "fund_underspend": {"severity": "medium", "zh": "基金支出偏低而需求未满足",
                        "en": "fund under-spent while needs go unmet", "share": 0.5},
    "provider_declines": {"severity": "medium", "zh": "服务方拒绝或未完成偏多",
                          "en": "provider declines or fails to deliver too often",
                          "share": 0.3, "weeks": 4, "min_tasks": 5},
    "capacity_short": {"severity": "medium", "zh": "服务能力缺口连续扩大",
                       "en": "unmet for lack of capacity keeps growing", "weeks": 3},
})
ALERT_SEVERITIES = ("high", "medium", "low")
# Each threshold: (smallest value, largest value or None, whole number).
_ALERT_LIMITS: Mapping[str, tuple[float, float | None, bool]] = MappingProxyType({
    "grace_weeks": (0, None, True), "weeks": (1, None, True), "min_tasks": (1, None, True),
    "share": (0.0, 1.0, False),
})


def _check_alerts(raw: Any) -> tuple[dict[str, dict[str, Any]], list[PolicyProblem]]:
    """The ``[alerts]`` section over the defaults, and its problems."""
    problems: list[PolicyProblem] = []
    rules = {name: dict(rule) for name, rule in ALERT_DEFAULTS.items()}
    if not isinstance(raw, Mapping):
        return rules, [_p("alerts", "应为键值表", "must be a table", "写成 [alerts.规则] 表",
                          "write it as [alerts.RULE] tables")]
    problems += _unknown_keys("alerts.", raw, tuple(ALERT_DEFAULTS))
    for name, given in raw.items():
        if name not in ALERT_DEFAULTS:
            continue
        if not isinstance(given, Mapping):
            problems.append(_p(f"alerts.{name}", "应为键值表", "must be a table",
                               f"写成 [alerts.{name}] 表", f"write it as [alerts.{name}]"))
            continue
        problems += _unknown_keys(f"alerts.{name}.", given, tuple(ALERT_DEFAULTS[name]))
        for key, value in given.items():
            if key not in ALERT_DEFAULTS[name]:
                continue
            where = f"alerts.{name}.{key}"
            if key == "severity" and value not in ALERT_SEVERITIES:
                problems.append(_p(where, f"未知的级别 {value!r}", f"unknown severity {value!r}",
                                   "可选 high、medium、low", "use high, medium or low"))
            elif key in ("zh", "en") and (not isinstance(value, str) or not value.strip()):
                problems.append(_p(where, "应为非空文字", "must be non-empty text",
                                   "写出该规则的名称", "give the rule's name"))
            elif key == "colours" and (not isinstance(value, list)
                                       or not set(value) <= set(vocab.TIERS) or not value):
                problems.append(_p(where, f"应为颜色列表,实际为 {value!r}",
                                   f"must be a list of colours, not {value!r}",
                                   '例如 ["red", "orange"]', 'e.g. ["red", "orange"]'))
            elif key in _ALERT_LIMITS:
                low, high, whole = _ALERT_LIMITS[key]
                bad = (isinstance(value, bool) or not isinstance(value, int | float)
                       or not math.isfinite(value) or value < low
                       or (high is not None and value > high)
                       or (whole and value != int(value)))
                if bad:
                    span = f"[{low:g}, {high:g}]" if high is not None else f"≥ {low:g}"
                    kind = "整数" if whole else "数"
                    problems.append(_p(where, f"应为 {span} 的{kind},实际为 {value!r}",
                                       f"must be a {'whole ' if whole else ''}number {span}, "
                                       f"not {value!r}",
                                       "参照 demand/default_policy.toml 的 [alerts]",
                                       "see [alerts] in demand/default_policy.toml"))
            if not problems or problems[-1].key != where:
                rules[name][key] = int(value) if key in _ALERT_LIMITS and \
                    _ALERT_LIMITS[key][2] and isinstance(value, int | float) else value
    return rules, problems


@dataclass(frozen=True, eq=True)
class Policy:
    """A validated, immutable colour policy.

    Scores are the Alkire–Foster weighted deprivation scores ``c_i = Σ_j w_j g_ij`` in [0, 1].
    A household is *poor* when ``c_i ≥ k``. Its score colour is red when ``c_i ≥
    thresholds['red']``, orange when ``≥ thresholds['orange']``, yellow when ``≥
    thresholds['yellow']``, else green. Flag rules can then raise the colour; an assessor's
    ``tier`` in the households table overrides everything.

    Parameters
    ----------
    name, version
        Identify the policy in every run's provenance.
    weights
        Weight per dimension, keyed by every ``vocab.DIMENSIONS`` code; non-negative, summing
        to 1 within ``WEIGHT_SUM_TOLERANCE``.
    k
        Poverty cut-off on the weighted score, ``0 < k ≤ 1``.
    thresholds
        Score thresholds for red, orange and yellow, with ``0 < yellow < orange < red ≤ 1``.
    flags
        Flag rules, applied in order; the most severe colour forced wins, and among rules
        forcing the same colour the first listed is reported.
    monitoring_weeks
        Weeks between monitoring visits per colour (whole numbers ≥ 1, never longer for a more
        severe colour). Colours left out take ``DEFAULT_MONITORING_WEEKS``.
    quarter
        The quarterly plan's demand rates (:class:`QuarterRates`).
    cycle
        The weekly cycle's rules (:class:`CycleRules`).
    alerts
        The early-warning rules: per rule, severity, names and thresholds over
        ``ALERT_DEFAULTS``.
    description
        Free text.

    Raises
    ------
    PolicyError
        When any value is invalid; the error lists every problem.
    """

    name: str
    version: str
    weights: Mapping[str, float]
    k: float
    thresholds: Mapping[str, float]
    flags: tuple[FlagRule, ...] = ()
    monitoring_weeks: Mapping[str, int] = field(
        default_factory=lambda: dict(DEFAULT_MONITORING_WEEKS)
    )
    description: str = ""
    quarter: QuarterRates = field(default_factory=QuarterRates)
    cycle: CycleRules = field(default_factory=CycleRules)
    alerts: Mapping[str, Mapping[str, Any]] = field(
        default_factory=lambda: {k: dict(v) for k, v in ALERT_DEFAULTS.items()})

    def __post_init__(self) -> None:
        # _check_values skips None (it stands for "failed to parse" there); here None is a
        # value the caller gave, so it is a problem of its own.
        problems = [
            _p(key, "缺少该项", "is missing", f"请提供 {key}", f"give {key}")
            for key in (
                "name",
                "version",
                "weights",
                "k",
                "thresholds",
                "flags",
                "monitoring_weeks",
                "description",
            )
            if getattr(self, key) is None
        ]
        problems += _check_values(
            name=self.name,
            version=self.version,
            weights=self.weights,
            k=self.k,
            thresholds=self.thresholds,
            flags=self.flags,
            monitoring=self.monitoring_weeks,
            description=self.description,
        )
        if not isinstance(self.quarter, QuarterRates):
            problems.append(_p("quarter", "应为 QuarterRates", "must be a QuarterRates",
                               "请用 QuarterRates(...)", "build it with QuarterRates(...)"))
        if problems:
            raise PolicyError(problems)
        # Freeze the mappings in vocabulary order: the dataclass is frozen, its dicts must be
        # too, or a caller could change a validated policy behind its back.
        freeze = object.__setattr__
        freeze(
            self, "weights", MappingProxyType({d: float(self.weights[d]) for d in vocab.DIMENSIONS})
        )
        freeze(self, "k", float(self.k))
        freeze(
            self,
            "thresholds",
            MappingProxyType({t: float(self.thresholds[t]) for t in THRESHOLD_TIERS}),
        )
        freeze(self, "flags", tuple(self.flags))
        rules, alert_problems = _check_alerts(self.alerts)
        if alert_problems:
            raise PolicyError(alert_problems)
        freeze(self, "alerts", MappingProxyType(
            {name: MappingProxyType(dict(rule)) for name, rule in rules.items()}))
        weeks = {**DEFAULT_MONITORING_WEEKS, **self.monitoring_weeks}
        freeze(
            self, "monitoring_weeks", MappingProxyType({t: int(weeks[t]) for t in vocab.TIER_ORDER})
        )

    def __hash__(self) -> int:
        # The generated hash would fail on the mapping fields; the digest identifies a policy.
        return hash(self.digest())

    # ------------------------------------------------------------------ construction

    @classmethod
    def load(cls, path: str | Path | None = None) -> Policy:
        """Read a policy from a TOML file.

        Parameters
        ----------
        path
            The TOML file; ``None`` reads the packaged ``demand/default_policy.toml``.

        Returns
        -------
        Policy
            The validated policy.

        Raises
        ------
        PolicyError
            When the file is not valid TOML or the policy in it is invalid (all problems are
            listed).
        FileNotFoundError
            When ``path`` does not exist.
        """
        if path is None:
            source = f"demand/{_DEFAULT_RESOURCE}"
            text = resources.files("wulian.demand").joinpath(_DEFAULT_RESOURCE).read_text("utf-8")
        else:
            source = str(path)
            text = Path(path).read_text(encoding="utf-8")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(
                [
                    PolicyProblem(
                        "(file)",
                        f"不是有效的 TOML:{exc}",
                        f"not valid TOML: {exc}",
                        "请检查该行的语法(字符串加引号、表头用 [ ])",
                        "check the syntax on that line (quote strings, use [ ] for tables)",
                    )
                ],
                source,
            ) from None
        return cls.from_dict(data, source=source)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "") -> Policy:
        """Build a policy from plain data (a parsed TOML document or :meth:`to_dict` output).

        Numbers may be written as fractions in strings (``"1/7"``) so exact weights stay
        readable.

        Parameters
        ----------
        data
            The policy as nested mappings and lists.
        source
            Where the data came from, for error messages.

        Returns
        -------
        Policy
            The validated policy.

        Raises
        ------
        PolicyError
            When keys are missing, unknown or of the wrong type, or values are invalid; every
            problem is listed.
        """
        problems: list[PolicyProblem] = []
        if not isinstance(data, Mapping):
            raise PolicyError(
                [
                    _p(
                        "(file)",
                        "策略应为键值表",
                        "the policy must be a table of keys",
                        "参照 demand/default_policy.toml",
                        "start from demand/default_policy.toml",
                    )
                ],
                source,
            )
        problems += _unknown_keys("", data, _TOP_KEYS)
        for key in _REQUIRED_TOP_KEYS:
            if key not in data:
                problems.append(
                    _p(
                        key,
                        "缺少必需的键",
                        "required key is missing",
                        f"请添加 {key}(参照 demand/default_policy.toml)",
                        f"add {key} (see demand/default_policy.toml)",
                    )
                )

        name = _string(data, "name", problems)
        version = _string(data, "version", problems)
        description = _string(data, "description", problems, default="")
        k = _number(data.get("k"), "k", problems) if "k" in data else None
        weights = _number_table(data, "weights", tuple(vocab.DIMENSIONS), problems, required=True)
        thresholds = _number_table(
            data,
            "thresholds",
            THRESHOLD_TIERS,
            problems,
            required=True,
            extra_hint=(
                "绿色为低于黄色阈值的全部家庭,无需阈值",
                "green is everything below the yellow threshold and takes none",
            ),
        )
        monitoring = _number_table(
            data, "monitoring_weeks", vocab.TIER_ORDER, problems, required=False
        )
        flags = _flag_rules(data.get("flags", []), problems)
        quarter = _quarter(data.get("quarter", {}), problems)
        cycle = _whole_section(data.get("cycle", {}), "cycle", CycleRules, _CYCLE_MINIMUM,
                               problems)
        alerts, alert_problems = _check_alerts(data.get("alerts", {}))
        problems += alert_problems

        # Value checks run on whatever parsed, so one pass reports structure and values alike.
        problems += _check_values(
            name=name,
            version=version,
            weights=weights,
            k=k,
            thresholds=thresholds,
            flags=flags,
            monitoring=monitoring,
            description=description,
        )
        if problems:
            raise PolicyError(_dedupe(problems), source)
        assert name is not None and version is not None and k is not None
        assert weights is not None and thresholds is not None and flags is not None
        return cls(
            name=name,
            version=version,
            weights=weights,
            k=k,
            thresholds=thresholds,
            flags=tuple(flags),
            monitoring_weeks=monitoring or {},
            description=description or "",
            quarter=quarter or QuarterRates(),
            cycle=cycle or CycleRules(),
            alerts=alerts,
        )

    # ------------------------------------------------------------------ use

    def weight_vector(self) -> np.ndarray:
        """The weights as a float array in ``vocab.DEPRIVATION_COLUMNS`` order.

        Returns
        -------
        numpy.ndarray
            Shape ``(len(vocab.DIMENSIONS),)``.
        """
        return np.array([self.weights[d] for d in vocab.DIMENSIONS], dtype=float)

    def to_dict(self) -> dict[str, Any]:
        """The policy as plain data, for provenance records and for :meth:`from_dict`.

        Returns
        -------
        dict
            Keys ``name, version, description, k, weights, thresholds, flags,
            monitoring_weeks, quarter``; mappings in vocabulary order.
        """
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "k": self.k,
            "weights": dict(self.weights),
            "thresholds": dict(self.thresholds),
            "flags": [f.to_dict() for f in self.flags],
            "monitoring_weeks": dict(self.monitoring_weeks),
            "quarter": self.quarter.to_dict(),
            "cycle": self.cycle.to_dict(),
            "alerts": {name: {k: (list(v) if isinstance(v, list | tuple) else v)
                              for k, v in rule.items()} for name, rule in self.alerts.items()},
        }

    def __reduce__(self):
        # Its mappings are read-only proxies, which pickle refuses; rebuild from the plain form
        # (so a Scenario, which holds its policy, can go to worker processes).
        return (Policy.from_dict, (self.to_dict(),))

    def digest(self) -> str:
        """SHA-256 (hex) of the canonical JSON form of :meth:`to_dict`.

        Canonical: keys sorted, no spaces, UTF-8, floats in Python's shortest round-trip
        form; so equal policies have equal digests whatever the file's layout or comments.

        Returns
        -------
        str
            64 hexadecimal characters.
        """
        text = json.dumps(
            self.to_dict(),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------- parsing helpers


def _p(key: str, zh: str, en: str, hint_zh: str, hint_en: str) -> PolicyProblem:
    return PolicyProblem(key, zh, en, hint_zh, hint_en)


def _dedupe(problems: list[PolicyProblem]) -> list[PolicyProblem]:
    seen: set[PolicyProblem] = set()
    out = []
    for p in problems:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def _unknown_keys(
    prefix: str,
    table: Mapping[str, Any],
    known: Sequence[str],
    extra_hint: tuple[str, str] | None = None,
) -> list[PolicyProblem]:
    out = []
    for key in table:
        if key in known:
            continue
        guess = closest(str(key), known)
        close_zh = f";是否应为 `{guess}`?" if guess else ""
        close_en = f"; did you mean `{guess}`?" if guess else ""
        hint_zh = extra_hint[0] + ";" if extra_hint else ""
        hint_en = extra_hint[1] + "; " if extra_hint else ""
        out.append(
            _p(
                f"{prefix}{key}",
                "未知的键",
                "unknown key",
                f"{hint_zh}可用的键:{', '.join(known)}{close_zh}",
                f"{hint_en}known keys: {', '.join(known)}{close_en}",
            )
        )
    return out


def _string(
    data: Mapping[str, Any], key: str, problems: list[PolicyProblem], default: str | None = None
) -> str | None:
    if key not in data:
        return default
    value = data[key]
    if not isinstance(value, str):
        problems.append(
            _p(
                key,
                f"应为字符串,实际为 {value!r}",
                f"must be a string, not {value!r}",
                f'请加引号,例如 {key} = "{value}"',
                f'quote it, e.g. {key} = "{value}"',
            )
        )
        return default
    return value


def _number(value: Any, key: str, problems: list[PolicyProblem]) -> float | None:
    """A float from a TOML number or a fraction string such as ``"1/7"``; None if invalid."""
    if isinstance(value, bool):  # bool is an int in Python; true/false is no weight
        number = None
    elif isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(Fraction(value.strip()))
        except (ValueError, ZeroDivisionError):
            number = None
    else:
        number = None
    if number is None or not math.isfinite(number):
        problems.append(
            _p(
                key,
                f"不是数字:{value!r}",
                f"not a number: {value!r}",
                '请写数字,例如 0.25,或分数字符串 "1/7"',
                'write a number such as 0.25, or a fraction string such as "1/7"',
            )
        )
        return None
    return number


def _number_table(
    data: Mapping[str, Any],
    key: str,
    known: Sequence[str],
    problems: list[PolicyProblem],
    *,
    required: bool,
    extra_hint: tuple[str, str] | None = None,
) -> dict[str, float] | None:
    if key not in data:
        return None if required else {}
    table = data[key]
    if not isinstance(table, Mapping):
        problems.append(
            _p(
                key,
                "应为键值表",
                "must be a table",
                f"写成 [{key}] 表,每行 代码 = 数值",
                f"write it as a [{key}] table with one `code = number` per line",
            )
        )
        return None
    problems += _unknown_keys(f"{key}.", table, known, extra_hint)
    out: dict[str, float] = {}
    ok = True
    for code in known:
        if code not in table:
            if required:
                problems.append(
                    _p(
                        f"{key}.{code}",
                        "缺少该项",
                        "is missing",
                        f"请在 [{key}] 中添加 {code} = …",
                        f"add {code} = … to [{key}]",
                    )
                )
                ok = False
            continue
        number = _number(table[code], f"{key}.{code}", problems)
        if number is None:
            ok = False
        else:
            out[code] = number
    return out if ok else None


def _flag_rules(raw: Any, problems: list[PolicyProblem]) -> list[FlagRule] | None:
    if not isinstance(raw, list) or not all(isinstance(r, Mapping) for r in raw):
        problems.append(
            _p(
                "flags",
                "应为规则表的数组",
                "must be an array of tables",
                "每条规则写成一个 [[flags]] 段",
                "write each rule as a [[flags]] block",
            )
        )
        return None
    rules: list[FlagRule] = []
    ok = True
    for i, rule in enumerate(raw):
        key = f"flags[{i}]"
        problems += _unknown_keys(f"{key}.", rule, _FLAG_KEYS)
        missing = [m for m in _REQUIRED_FLAG_KEYS if m not in rule]
        for m in missing:
            problems.append(
                _p(
                    f"{key}.{m}",
                    "缺少该项",
                    "is missing",
                    f"每条规则需要 {', '.join(_REQUIRED_FLAG_KEYS)}",
                    f"every rule needs {', '.join(_REQUIRED_FLAG_KEYS)}",
                )
            )
        texts = {}
        for m in ("name", "at_least", "zh", "en"):
            if m in rule:
                texts[m] = _string(rule, m, problems)
                if texts[m] is None:
                    ok = False
        all_of = rule.get("all_of")
        if "all_of" in rule and (
            not isinstance(all_of, list) or not all(isinstance(c, str) for c in all_of)
        ):
            problems.append(
                _p(
                    f"{key}.all_of",
                    "应为类别代码的数组",
                    "must be an array of category codes",
                    '例如 all_of = ["serious_illness", "elderly_alone"]',
                    'e.g. all_of = ["serious_illness", "elderly_alone"]',
                )
            )
            ok = False
        if missing or not ok:
            ok = False
            continue
        rules.append(
            FlagRule(
                name=texts["name"] or "",
                all_of=tuple(all_of),
                at_least=texts["at_least"] or "",
                zh=texts.get("zh") or "",
                en=texts.get("en") or "",
            )
        )
    return rules if ok else None


# ---------------------------------------------------------------------- value checks


def _check_values(
    *,
    name: Any,
    version: Any,
    weights: Mapping[str, Any] | None,
    k: Any,
    thresholds: Mapping[str, Any] | None,
    flags: Sequence[FlagRule] | None,
    monitoring: Mapping[str, Any] | None,
    description: Any,
) -> list[PolicyProblem]:
    """Every value problem; arguments that failed to parse are passed as ``None`` and skipped.

    Shared by :meth:`Policy.from_dict` (file input) and ``Policy.__post_init__`` (direct
    construction), so both paths enforce exactly the same rules.
    """
    out: list[PolicyProblem] = []
    for key, value in (("name", name), ("version", version)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            out.append(
                _p(
                    key,
                    "不能为空",
                    "must not be empty",
                    f'请填写,例如 {key} = "chengdu-2026"',
                    f'fill it in, e.g. {key} = "chengdu-2026"',
                )
            )
    if description is not None and not isinstance(description, str):
        out.append(_p("description", "应为字符串", "must be a string", "请加引号", "quote it"))

    for key, table in (
        ("weights", weights),
        ("thresholds", thresholds),
        ("monitoring_weeks", monitoring),
    ):
        if table is not None and not isinstance(table, Mapping):
            out.append(
                _p(
                    key,
                    "应为键值映射",
                    "must be a mapping",
                    "请传入 {代码: 数值} 字典",
                    "pass a {code: number} dict",
                )
            )
    if not isinstance(weights, Mapping):
        weights = None
    if not isinstance(thresholds, Mapping):
        thresholds = None
    if not isinstance(monitoring, Mapping):
        monitoring = None
    if flags is not None and (isinstance(flags, str | bytes) or not isinstance(flags, Sequence)):
        out.append(
            _p(
                "flags",
                "应为规则序列",
                "must be a sequence of rules",
                "请传入 FlagRule 的元组",
                "pass a tuple of FlagRule",
            )
        )
        flags = None

    if weights is not None:
        out += _check_weights(weights)
    if k is not None:
        if isinstance(k, bool) or not isinstance(k, int | float) or not 0 < k <= 1:
            out.append(
                _p(
                    "k",
                    f"贫困临界值应满足 0 < k ≤ 1,实际为 {k!r}",
                    f"the poverty cut-off must satisfy 0 < k ≤ 1, not {k!r}",
                    "k 是加权剥夺得分的临界值,例如 1/3 表示至少三分之一的加权剥夺",
                    "k is a cut-off on the weighted score; e.g. 1/3 means deprived in at "
                    "least a third of the weighted dimensions",
                )
            )
    if thresholds is not None:
        out += _check_thresholds(thresholds)
    if flags is not None:
        out += _check_flags(flags)
    if monitoring is not None:
        out += _check_monitoring(monitoring)
    return out


def _check_weights(weights: Mapping[str, Any]) -> list[PolicyProblem]:
    out = []
    dims = tuple(vocab.DIMENSIONS)
    missing = [d for d in dims if d not in weights]
    unknown = [d for d in weights if d not in vocab.DIMENSIONS]
    for d in missing:
        out.append(
            _p(
                f"weights.{d}",
                "缺少该维度的权重",
                "the dimension has no weight",
                f"请在 [weights] 中添加 {d} = …(每个维度都需要权重,可为 0)",
                f"add {d} = … to [weights] (every dimension needs one; 0 is allowed)",
            )
        )
    for d in unknown:
        out += _unknown_keys("weights.", {d: None}, dims)
    bad = False
    for d in dims:
        if d not in weights:
            continue
        w = weights[d]
        if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w) or w < 0:
            bad = True
            out.append(
                _p(
                    f"weights.{d}",
                    f"权重应为非负数,实际为 {w!r}",
                    f"a weight must be a non-negative number, not {w!r}",
                    "请改为 0 到 1 之间的数",
                    "use a number between 0 and 1",
                )
            )
    if not missing and not unknown and not bad:
        total = math.fsum(float(weights[d]) for d in dims)
        if abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
            out.append(
                _p(
                    "weights",
                    f"权重之和为 {total:.12g},应为 1",
                    f"the weights sum to {total:.12g}, not 1",
                    f"请调整各维度权重使其合计为 1(误差 {WEIGHT_SUM_TOLERANCE:g} 以内);"
                    '等权时每项写 "1/7"',
                    f"adjust them so they add up to 1 (within {WEIGHT_SUM_TOLERANCE:g}); "
                    'for equal weights write "1/7" for each',
                )
            )
    return out


def _check_thresholds(thresholds: Mapping[str, Any]) -> list[PolicyProblem]:
    out = []
    for t in thresholds:
        if t not in THRESHOLD_TIERS:
            out += _unknown_keys(
                "thresholds.",
                {t: None},
                THRESHOLD_TIERS,
                (
                    "绿色为低于黄色阈值的全部家庭,无需阈值",
                    "green is everything below the yellow threshold and takes none",
                ),
            )
    values: dict[str, float] = {}
    for t in THRESHOLD_TIERS:
        if t not in thresholds:
            out.append(
                _p(
                    f"thresholds.{t}",
                    "缺少该颜色的阈值",
                    "the colour has no threshold",
                    f"请在 [thresholds] 中添加 {t} = …",
                    f"add {t} = … to [thresholds]",
                )
            )
            continue
        v = thresholds[t]
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 1:
            out.append(
                _p(
                    f"thresholds.{t}",
                    f"阈值应在 (0, 1] 内,实际为 {v!r}",
                    f"a threshold must lie in (0, 1], not {v!r}",
                    "阈值针对加权剥夺得分 c_i(0 到 1)",
                    "thresholds apply to the weighted score c_i, which lies in [0, 1]",
                )
            )
        else:
            values[t] = float(v)
    if len(values) == len(THRESHOLD_TIERS):
        seq = [values[t] for t in THRESHOLD_TIERS]
        if not all(a > b for a, b in zip(seq, seq[1:], strict=False)):
            shown = ", ".join(f"{t}={values[t]:g}" for t in THRESHOLD_TIERS)
            out.append(
                _p(
                    "thresholds",
                    f"阈值须满足 red > orange > yellow,实际为 {shown}",
                    f"thresholds must satisfy red > orange > yellow, got {shown}",
                    "越严重的颜色需要越高的得分,请按此顺序调整",
                    "a more severe colour needs a higher score; reorder them",
                )
            )
    return out


def _check_flags(flags: Sequence[FlagRule]) -> list[PolicyProblem]:
    out = []
    seen: set[str] = set()
    for i, rule in enumerate(flags):
        key = f"flags[{i}]"
        if not isinstance(rule, FlagRule):
            out.append(
                _p(
                    key,
                    "不是 FlagRule",
                    "is not a FlagRule",
                    "请用 FlagRule(name, all_of, at_least)",
                    "build it with FlagRule(name, all_of, at_least)",
                )
            )
            continue
        if not rule.name.strip():
            out.append(
                _p(
                    f"{key}.name",
                    "规则名称不能为空",
                    "the rule needs a name",
                    '例如 name = "ill_and_alone"',
                    'e.g. name = "ill_and_alone"',
                )
            )
        elif rule.name in seen:
            out.append(
                _p(
                    f"{key}.name",
                    f"规则名称 {rule.name} 重复",
                    f"rule name {rule.name} is used twice",
                    "每条规则的名称须唯一",
                    "give every rule its own name",
                )
            )
        seen.add(rule.name)
        if not rule.all_of:
            out.append(
                _p(
                    f"{key}.all_of",
                    "至少需要一个类别",
                    "needs at least one category",
                    '例如 all_of = ["tekun"]',
                    'e.g. all_of = ["tekun"]',
                )
            )
        for c in rule.all_of:
            if c not in vocab.CATEGORIES:
                guess = closest(c, vocab.CATEGORIES)
                out.append(
                    _p(
                        f"{key}.all_of",
                        f"未知的类别 {c!r}",
                        f"unknown category {c!r}",
                        f"可选类别:{', '.join(vocab.CATEGORIES)}"
                        + (f";是否应为 `{guess}`?" if guess else ""),
                        f"allowed categories: {', '.join(vocab.CATEGORIES)}"
                        + (f"; did you mean `{guess}`?" if guess else ""),
                    )
                )
        if rule.at_least not in vocab.TIERS:
            guess = closest(rule.at_least, vocab.TIERS)
            out.append(
                _p(
                    f"{key}.at_least",
                    f"未知的颜色 {rule.at_least!r}",
                    f"unknown colour {rule.at_least!r}",
                    f"可选:{', '.join(vocab.TIERS)}" + (f";是否应为 `{guess}`?" if guess else ""),
                    f"allowed: {', '.join(vocab.TIERS)}"
                    + (f"; did you mean `{guess}`?" if guess else ""),
                )
            )
    return out


def _check_monitoring(monitoring: Mapping[str, Any]) -> list[PolicyProblem]:
    out = []
    for t in monitoring:
        if t not in vocab.TIERS:
            out += _unknown_keys("monitoring_weeks.", {t: None}, vocab.TIER_ORDER)
    weeks: dict[str, float] = dict(DEFAULT_MONITORING_WEEKS)
    ok = True
    for t in vocab.TIER_ORDER:
        if t not in monitoring:
            continue
        v = monitoring[t]
        if (
            isinstance(v, bool)
            or not isinstance(v, int | float)
            or not math.isfinite(v)
            or v < 1
            or v != int(v)
        ):
            ok = False
            out.append(
                _p(
                    f"monitoring_weeks.{t}",
                    f"应为不小于 1 的整数周,实际为 {v!r}",
                    f"must be a whole number of weeks ≥ 1, not {v!r}",
                    "例如 red = 1 表示每周走访一次",
                    "e.g. red = 1 means a monitoring visit every week",
                )
            )
        else:
            weeks[t] = v
    if ok:
        seq = [weeks[t] for t in vocab.TIER_ORDER]
        if not all(a <= b for a, b in zip(seq, seq[1:], strict=False)):
            shown = ", ".join(f"{t}={int(weeks[t])}" for t in vocab.TIER_ORDER)
            out.append(
                _p(
                    "monitoring_weeks",
                    f"越严重的颜色走访间隔不能更长,实际为 {shown}",
                    f"a more severe colour must not be visited less often, got {shown}",
                    "请保证 red ≤ orange ≤ yellow ≤ green",
                    "keep red ≤ orange ≤ yellow ≤ green",
                )
            )
    return out


def _quarter(raw: Any, problems: list[PolicyProblem]) -> QuarterRates | None:
    """The ``[quarter]`` section, or ``None`` after adding its problems."""
    if not isinstance(raw, Mapping):
        problems.append(_p("quarter", "应为键值表", "must be a table",
                           "写成 [quarter] 表", "write it as a [quarter] table"))
        return None
    found = len(problems)
    problems += _unknown_keys("quarter.", raw, _QUARTER_KEYS)
    rates: dict[str, dict[str, float]] = {}
    for key in ("arrival_rate", "carry_forward"):
        table = raw.get(key, {})
        if not isinstance(table, Mapping):
            problems.append(_p(f"quarter.{key}", "应为键值表", "must be a table",
                               f"例如 {key} = {{ red = 1.0, green = 0.5 }}",
                               f"e.g. {key} = {{ red = 1.0, green = 0.5 }}"))
            continue
        problems += _unknown_keys(f"quarter.{key}.", table, vocab.TIER_ORDER)
        rates[key] = {}
        for t in vocab.TIER_ORDER:
            if t in table:
                number = _number(table[t], f"quarter.{key}.{t}", problems)
                if number is not None:
                    rates[key][t] = number
    hours = raw.get("monitoring_hours", DEFAULT_MONITORING_HOURS)
    hours = _number(hours, "quarter.monitoring_hours", problems)
    # Value checks on whatever parsed, so one pass reports structure and values alike.
    problems += _check_quarter(rates.get("arrival_rate", {}), rates.get("carry_forward", {}),
                               hours)
    if len(problems) > found:
        return None
    return QuarterRates(arrival_rate=rates.get("arrival_rate", {}),
                        carry_forward=rates.get("carry_forward", {}),
                        monitoring_hours=hours if hours is not None else DEFAULT_MONITORING_HOURS)


def _check_quarter(arrival: Any, carry: Any, hours: Any) -> list[PolicyProblem]:
    out = []
    for key, table, top in (("arrival_rate", arrival, None), ("carry_forward", carry, 1.0)):
        if not isinstance(table, Mapping):
            out.append(_p(f"quarter.{key}", "应为键值映射", "must be a mapping",
                          "请传入 {颜色: 数值} 字典", "pass a {colour: number} dict"))
            continue
        out += _unknown_keys(f"quarter.{key}.", {t: None for t in table if t not in vocab.TIERS},
                             vocab.TIER_ORDER)
        for t, v in table.items():
            bad = isinstance(v, bool) or not isinstance(v, int | float) or \
                not math.isfinite(v) or v < 0 or (top is not None and v > top)
            if bad:
                span = "0 到 1 之间" if top is not None else "不小于 0"
                span_en = "between 0 and 1" if top is not None else "≥ 0"
                out.append(_p(f"quarter.{key}.{t}", f"应为{span}的数,实际为 {v!r}",
                              f"must be a number {span_en}, not {v!r}",
                              "例如 1.0 表示" + ("每周新增与基准周相同数量的需求"
                                                if top is None else "未满足需求全部延续到下周"),
                              "e.g. 1.0 means " + ("as many new needs each week as the snapshot "
                                                   "week" if top is None else "every unserved "
                                                   "need stays open the next week")))
    if hours is not None and (isinstance(hours, bool) or not isinstance(hours, int | float)
                              or not math.isfinite(hours) or hours <= 0):
        out.append(_p("quarter.monitoring_hours", f"应为正数,实际为 {hours!r}",
                      f"must be a positive number, not {hours!r}",
                      "例如 1.0 表示每次走访监测 1 小时",
                      "e.g. 1.0 means one hour per monitoring visit"))
    return out


def _check_whole(values: Mapping[str, Any], section: str, minimum: Mapping[str, int]
                 ) -> list[PolicyProblem]:
    """Each value a whole number ≥ its minimum."""
    out = []
    for key, low in minimum.items():
        v = values.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            out.append(_p(f"{section}.{key}", f"应为不小于 {low} 的整数,实际为 {v!r}",
                          f"must be a whole number ≥ {low}, not {v!r}",
                          f"请参照 demand/default_policy.toml 的 [{section}]",
                          f"see [{section}] in demand/default_policy.toml"))
    return out


def _whole_section(raw: Any, section: str, cls: type, minimum: Mapping[str, int],
                   problems: list[PolicyProblem]) -> Any:
    """A section of whole-number settings as ``cls``, or ``None`` after adding its problems."""
    if not isinstance(raw, Mapping):
        problems.append(_p(section, "应为键值表", "must be a table",
                           f"写成 [{section}] 表", f"write it as a [{section}] table"))
        return None
    found = len(problems)
    problems += _unknown_keys(f"{section}.", raw, tuple(minimum))
    given = {k: v for k, v in raw.items() if k in minimum}
    problems += _check_whole({**cls().to_dict(), **given}, section, minimum)
    return None if len(problems) > found else cls(**given)
