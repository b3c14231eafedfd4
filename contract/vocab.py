"""Controlled vocabularies of the data contract, with Chinese and English display names.

Codes are English snake_case (what files hold); display names are for people.
"""

from __future__ import annotations

# Centre hierarchy, top to bottom; a centre's parent sits exactly one level up.
LEVELS: dict[str, tuple[str, str]] = {
    "city": ("市级中心", "city centre"),
    "district": ("区县中心", "district centre"),
    "street": ("街镇中心", "street centre"),
    "station": ("村社站点", "community station"),
}
PARENT_LEVEL: dict[str, str | None] = {
    "city": None,
    "district": "city",
    "street": "district",
    "station": "street",
}

# The four-colour code (四色), highest priority first.
TIERS: dict[str, tuple[str, str]] = {
    "red": ("红色", "red"),
    "orange": ("橙色", "orange"),
    "yellow": ("黄色", "yellow"),
    "green": ("绿色", "green"),
}
TIER_ORDER: tuple[str, ...] = tuple(TIERS)

# The five linkages (五个联动).
LINKAGES: dict[str, tuple[str, str]] = {
    "department": ("联动部门", "government departments"),
    "firm": ("联动企业", "firms"),
    "fund": ("联动基金", "funds"),
    "ngo": ("联动组织", "NGOs / social-work organisations"),
    "volunteer": ("联动志愿", "volunteers"),
}

CATEGORIES: dict[str, tuple[str, str]] = {
    "dibao": ("低保", "minimum-living-guarantee (dibao)"),
    "tekun": ("特困", "extremely poor (tekun)"),
    "low_income": ("低收入", "low income"),
    "rigid_expense": ("刚性支出困难", "hardship from rigid expenses"),
    "elderly_alone": ("孤寡老人", "elderly living alone"),
    "child_in_difficulty": ("困境儿童", "child in difficulty"),
    "disabled": ("残疾人", "person with disability"),
    "serious_illness": ("重病患者", "serious illness"),
    "unemployed": ("失业", "unemployed"),
}

# Deprivation dimensions of the multidimensional assessment; households carry d_<dimension>.
DIMENSIONS: dict[str, tuple[str, str]] = {
    "income": ("收入", "income"),
    "education": ("教育", "education"),
    "health": ("健康", "health"),
    "housing": ("住房", "housing"),
    "assets": ("资产", "assets"),
    "capability": ("能力", "capability"),
    "social": ("社会关系", "social ties"),
}
DEPRIVATION_COLUMNS: tuple[str, ...] = tuple(f"d_{d}" for d in DIMENSIONS)

UNITS: dict[str, tuple[str, str]] = {
    "hour": ("小时", "hour"),
    "visit": ("次", "visit"),
    "item": ("件", "item"),
    "yuan": ("元", "yuan"),
}
# Units that are counted in whole numbers; yuan is counted to the cent.
WHOLE_UNITS: frozenset[str] = frozenset({"hour", "visit", "item"})

DELIVERIES: dict[str, tuple[str, str]] = {
    "in_person": ("上门服务", "in person"),
    "in_kind": ("实物", "in kind"),
    "cash": ("现金", "cash"),
}

FUND_SOURCES: dict[str, tuple[str, str]] = {
    "government": ("财政资金", "government budget"),
    "welfare_lottery": ("福彩公益金", "welfare-lottery public-welfare fund"),
    "charity": ("慈善基金", "charity fund"),
    "enterprise": ("企业捐赠", "enterprise donation"),
}

SKILLS: dict[str, tuple[str, str]] = {
    "companionship": ("陪伴", "companionship"),
    "errands": ("代办跑腿", "errands"),
    "tutoring": ("课业辅导", "tutoring"),
    "counselling": ("心理疏导", "counselling"),
    "nursing": ("护理", "nursing"),
    "rehabilitation": ("康复训练", "rehabilitation"),
    "legal": ("法律咨询", "legal advice"),
    "repair": ("维修", "home repair"),
    "cooking": ("助餐", "meal help"),
    "childcare": ("儿童照护", "child care"),
    "digital": ("数字助老", "digital help"),
    "job_coaching": ("就业指导", "job coaching"),
}

LANGUAGES: dict[str, tuple[str, str]] = {
    "mandarin": ("普通话", "Mandarin"),
    "sichuanese": ("四川话", "Sichuanese"),
    "english": ("英语", "English"),
    "tibetan": ("藏语", "Tibetan"),
    "yi": ("彝语", "Yi"),
    "sign": ("手语", "sign language"),
}

GENDERS: dict[str, tuple[str, str]] = {
    "female": ("女", "female"),
    "male": ("男", "male"),
}

_DAYS = {
    "mon": ("周一", "Mon"),
    "tue": ("周二", "Tue"),
    "wed": ("周三", "Wed"),
    "thu": ("周四", "Thu"),
    "fri": ("周五", "Fri"),
    "sat": ("周六", "Sat"),
    "sun": ("周日", "Sun"),
}
_HALVES = {"am": ("上午", "morning"), "pm": ("下午", "afternoon")}
# The 14 half-day slots of a week, in calendar order.
SLOTS: dict[str, tuple[str, str]] = {
    f"{d}_{h}": (f"{dz}{hz}", f"{de} {he}")
    for d, (dz, de) in _DAYS.items()
    for h, (hz, he) in _HALVES.items()
}

# Mainland China's bounding box, for a sanity check on coordinates.
CHINA_LAT = (18.0, 54.0)
CHINA_LON = (73.0, 135.0)


# Why a need went unmet in the weekly allocation, in the order they are tried (each need gets the
# first that applies: docs/model.md, "Reasons for unmet units").
ALLOCATION_REASONS: tuple[str, ...] = ("no_eligible_offer", "out_of_coverage", "household_cap",
                                       "budget_exhausted", "capacity_exhausted")
# Why a visit went unmet in the volunteer matching, in the order they are tried.
MATCHING_REASONS: tuple[str, ...] = ("no_volunteer_with_skill", "no_safeguarding_check",
                                     "beyond_travel_limit", "no_available_slot", "hours_exhausted")

# Why a need or a visit went unmet, in Chinese (the codes are the English names): the allocation's
# reasons, then the volunteer matching's.
REASON_ZH: dict[str, str] = {
    "no_eligible_offer": "无符合条件的供给",
    "out_of_coverage": "不在覆盖范围",
    "household_cap": "达到每户上限",
    "budget_exhausted": "基金预算用尽",
    "capacity_exhausted": "供给容量用尽",
    "no_volunteer_with_skill": "无具备技能的志愿者",
    "no_safeguarding_check": "无通过背景审查的志愿者",
    "beyond_travel_limit": "超出志愿者出行距离",
    "no_available_slot": "无可用时段",
    "hours_exhausted": "志愿时长用尽",
}


# -- The weekly cycle (四项同步, DESIGN §10) -------------------------------------------------

# How a household came to the centre's attention (主动发现).
DISCOVERY: dict[str, tuple[str, str]] = {
    "grid_worker": ("网格员", "grid worker"),
    "building_head": ("楼栋长", "building head"),
    "one_click": ("一键申请", "one-click request"),
    "referral": ("转介", "referral"),
    "visit": ("走访巡查", "monitoring visit"),
    "import": ("批量导入", "imported file"),
}

# A need's life cycle: open → allocated → (delivered in full → closed) or carried forward.
NEED_STATES: dict[str, tuple[str, str]] = {
    "open": ("待分配", "open"),
    "allocated": ("已分配", "allocated"),
    "carried": ("顺延", "carried forward"),
    "closed": ("已关闭", "closed"),
}
NEED_CLOSE_REASONS: dict[str, tuple[str, str]] = {
    "delivered": ("已全部交付", "delivered in full"),
    "withdrawn": ("已撤回", "withdrawn"),
    "expired": ("已过期", "expired"),
}

# A task (任务) pushed to a provider or a volunteer, and the answers it can get.
TASK_KINDS: dict[str, tuple[str, str]] = {
    "service": ("服务", "service"),
    "visit": ("志愿服务走访", "volunteer service visit"),
    "monitoring": ("巡查走访", "monitoring visit"),
    "visit+monitoring": ("服务并巡查", "service visit with monitoring"),
}
TASK_STATUSES: dict[str, tuple[str, str]] = {
    "planned": ("已推送", "sent"),
    "accepted": ("已接受", "accepted"),
    "declined": ("已拒绝", "declined"),
    "delivered": ("已完成", "delivered"),
    "not_delivered": ("未完成", "not delivered"),
    # Recalled when its need was withdrawn before an answer: not an answer anyone gives.
    "withdrawn": ("已撤回", "withdrawn"),
}
#: The statuses an answer may give (a task is sent planned; withdrawn is its need's recall).
TASK_ANSWERS = tuple(s for s in TASK_STATUSES if s not in ("planned", "withdrawn"))
# Which answer may follow which; an answer equal to the current one changes nothing.
TASK_NEXT: dict[str, frozenset[str]] = {
    "planned": frozenset({"accepted", "declined", "delivered", "not_delivered"}),
    "accepted": frozenset({"declined", "delivered", "not_delivered"}),
    "declined": frozenset(),
    "delivered": frozenset(),
    "not_delivered": frozenset(),
    "withdrawn": frozenset(),
}
DECLINE_REASONS: dict[str, tuple[str, str]] = {
    "no_capacity": ("人手或物资不足", "no capacity"),
    "not_reachable": ("联系不上服务对象", "household not reachable"),
    "refused": ("服务对象拒绝", "household refused"),
    "not_eligible": ("不符合条件", "not eligible"),
    "already_served": ("已由他方提供", "already served elsewhere"),
    "other": ("其他", "other"),
    "no_answer": ("周结束时未回复", "no answer when the week closed"),
}
VISIT_OUTCOMES: dict[str, tuple[str, str]] = {
    "done": ("已走访", "visited"),
    "missed": ("未走访", "missed"),
}
