"""The one error for pins that cannot be kept, in the allocation and in the volunteer matching.

A coordinator's pin (a need's units to a source, a visit to a volunteer and slot) is checked
before solving; every pin that cannot be kept is listed, one :class:`PinProblem` each, and the
run refused. A problem names the condition that failed (the offer's service, its coverage, the
fund's reach, …) in Chinese and in English, from :data:`CONDITIONS`: the app shows the user's
language, the command line both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# condition: (Chinese, English). Facts in braces; a fact given as a (中文, English) pair is
# written in each language's own words (a colour, a category, a skill).
CONDITIONS: dict[str, tuple[str, str]] = {
    # the allocation (optimizer.allocation)
    "need_not_in_run": ("该需求不在本次运行中(其他周次或其他中心)",
                        "the need is not in this run (another week or another centre)"),
    "offer_not_in_run": ("供给 {source} 不在本次运行中(编号未知,或本周没有)",
                         "the offer {source} is not in this run (unknown id, or not offered "
                         "this week)"),
    "offer_service": ("供给 {source} 提供的是 {offered},该需求要的是 {wanted}",
                      "the offer {source} gives {offered}; the need asks for {wanted}"),
    "offer_coverage": ("供给 {source} 的覆盖范围 {coverage} 不包括该户所在站点 {station}",
                       "the offer {source} covers {coverage}, which does not include the "
                       "household's station {station}"),
    "fund_reach": ("供给 {source} 由基金 {fund} 支付,该基金的范围 {fund_centre} 不包括站点 "
                   "{station}",
                   "the offer {source} is paid by fund {fund}, whose reach {fund_centre} does "
                   "not include the station {station}"),
    "fund_earmark": ("供给 {source} 由基金 {fund} 支付,该基金专款用于其他服务,不含 {wanted}",
                     "the offer {source} is paid by fund {fund}, earmarked for other services "
                     "than {wanted}"),
    "offer_categories": ("供给 {source} 只面向 {accepted} 家庭,该户不属于",
                         "the offer {source} is only for {accepted} households; this household "
                         "is none of them"),
    "offer_colour": ("供给 {source} 只面向 {accepted} 家庭,该户为 {colour}",
                     "the offer {source} is only for {accepted} households; this household is "
                     "{colour}"),
    "source_other": ("{source} 不能服务该需求", "{source} may not serve this need"),
    "volunteer_unknown": ("没有志愿者 {source}", "no volunteer {source}"),
    "volunteer_street": ("志愿者 {source} 属于街镇 {volunteer_street},该户属于 {street}",
                         "the volunteer {source} belongs to street {volunteer_street}; the "
                         "household to {street}"),
    "volunteer_skills": ("志愿者 {source} 不具备该服务所需的技能",
                         "the volunteer {source} lacks a skill the service needs"),
    "volunteer_check": ("该服务需要通过背景审查的志愿者,志愿者 {source} 未通过审查",
                        "the service needs a background-checked volunteer; {source} is not"),
    "volunteer_no_hours": ("志愿者 {source} 没有可服务的时长或时段",
                           "the volunteer {source} has no hours or slots"),
    "offer_no_capacity": ("供给 {source} 没有容量", "the offer {source} has no capacity"),
    "volunteer_no_pool": ("街镇 {street} 没有能提供 {wanted} 的志愿者",
                          "no volunteer of street {street} can give {wanted}"),
    "units_above_cap": ("锁定 {units} 个单位,超过该需求或该户上限允许的 {most}",
                        "{units} units pinned, above the {most} the need or the household "
                        "cap allows"),
    # the volunteer matching (optimizer.visits, planning.match)
    "visit_no_volunteer": ("没有志愿者 {source}", "no volunteer {source}"),
    "visit_skill": ("志愿者 {source} 缺少该走访所需的技能", "the volunteer {source} lacks a "
                    "skill the visit needs"),
    "visit_check": ("该走访需要背景审查,志愿者 {source} 未通过审查",
                    "the visit needs a background check, which the volunteer {source} has not "
                    "passed"),
    "visit_reach": ("该户距离 {km} 公里,超出志愿者 {source} 的出行范围 {reach} 公里",
                    "the household is {km} km away, beyond the volunteer {source}'s travel "
                    "limit of {reach} km"),
    "visit_slot_unknown": ("未知的时段 {slot}", "unknown slot {slot}"),
    "visit_slot_unavailable": ("志愿者 {source} 在 {slot} 没空", "the volunteer {source} is not "
                               "available in {slot}"),
    "visit_slot_twice": ("{count} 次走访锁定给志愿者 {source} 的同一时段 {slot},每个时段只能一次",
                         "{count} visits pinned to the volunteer {source} in {slot}: one visit "
                         "per slot"),
    "visit_slots_short": ("{count} 次走访锁定给志愿者 {source},其只有 {slots} 个空闲时段",
                          "{count} visits pinned to the volunteer {source}, available in "
                          "{slots} slots"),
    "visit_hours_over": ("锁定给志愿者 {source} {hours} 小时,超过其最多 {most} 小时",
                         "{hours} hours pinned to the volunteer {source}, above their "
                         "max_hours of {most}"),
    "pool_units_short": ("锁定给志愿者 {units} 个单位,但分配只从志愿者队伍安排了 {served}",
                         "{units} units pinned to volunteers, but the allocation serves "
                         "{served} from a volunteer pool"),
}


@dataclass(frozen=True)
class PinProblem:
    """One pin that cannot be kept: which (``need``, and the ``source`` it was pinned to, if
    any) and the ``condition`` that failed, with the facts its sentence names."""

    condition: str
    need: str = ""
    source: str = ""
    facts: Mapping[str, object] = field(default_factory=dict)

    def _reason(self, i: int) -> str:
        facts = {k: v[i] if isinstance(v, tuple) else v for k, v in self.facts.items()}
        return CONDITIONS[self.condition][i].format(source=self.source, **facts)

    @property
    def reason_zh(self) -> str:
        """The failed condition alone (the pin form lists it beside the source)."""
        return self._reason(0)

    @property
    def reason_en(self) -> str:
        return self._reason(1)

    @property
    def zh(self) -> str:
        """Which pin, and the failed condition: 锁定 N001 → O02:…"""
        pin = self.need + (f" → {self.source}" if self.source else "")
        return f"{'锁定 ' + pin if pin else '锁定'}:{self.reason_zh}"

    @property
    def en(self) -> str:
        pin = self.need + (f" → {self.source}" if self.source else "")
        return f"{'pin ' + pin if pin else 'pins'}: {self.reason_en}"

    def __str__(self) -> str:
        return f"{self.zh} / {self.en}"


def words(codes: str | Iterable[str] | None,
          table: Mapping[str, tuple[str, str]]) -> tuple[str, str]:
    """Codes (a list, or a ';'-list as the tables write them) in words, as a fact of a
    condition: (Chinese joined by 、, English joined by commas); an unknown code stays as is."""
    listed = (codes or "").split(";") if isinstance(codes, str | None) else codes
    found = [c for c in listed if c]
    return ("、".join(table.get(c, (c, c))[0] for c in found),
            ", ".join(table.get(c, (c, c))[1] for c in found))


class PinError(ValueError):
    """Pins that cannot be kept; ``problems`` says which pin and why, one :class:`PinProblem`
    each (``str`` of one is its Chinese and English)."""

    def __init__(self, problems: list[PinProblem]):
        self.problems = problems
        super().__init__("; ".join(map(str, problems)))
