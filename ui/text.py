"""Every string the app shows, in Chinese and English, in one table.

``TEXT`` maps a key to ``(中文, English)``; :func:`say` picks the language (``zh``, ``en`` or
``both``, which shows "中文 / English"). Column headings of the tables shown live in
``COLUMNS``; codes of the data contract (colours, linkages, …) are translated from
``contract.vocab``. Pure Python: no Streamlit here, so the table is easy to test.
"""

from __future__ import annotations

from wulian.contract import vocab

LANGUAGES: dict[str, str] = {"zh": "中文", "en": "English", "both": "中文 / English"}
DEFAULT_LANGUAGE = "zh"

TEXT: dict[str, tuple[str, str]] = {
    # shell
    "app.title": ("五联 · 社会救助资源对接", "wulian · linking assistance to the five linkages"),
    "app.language": ("语言 / Language", "语言 / Language"),
    "app.scenario": ("场景", "Scenario"),
    "app.scenario.demo": ("内置示例(一个区)", "bundled demo (one district)"),
    "app.scenario.tiny": ("小型合成示例", "tiny synthetic scenario"),
    "app.scenario.upload": ("已上传:{name}", "uploaded: {name}"),
    "app.scenario.digest": ("输入摘要 {digest} · {households} 户 · {needs} 项需求",
                            "input digest {digest} · {households} households · {needs} needs"),
    "app.week": ("周次", "Week"),
    "app.week.all": ("全部周次", "all weeks"),
    "page.coordinator": ("协调员 · 每周分配", "Coordinator · weekly allocation"),
    "page.fund": ("基金 · 预算实验室", "Fund lab · budgets"),
    "page.data": ("数据", "Data"),
    "page.runs": ("运行记录", "Runs"),
    # centre picker
    "centre.district": ("区县", "District"),
    "centre.street": ("街镇", "Street"),
    "centre.station": ("村社站点", "Station"),
    "centre.all": ("全部", "all"),
    # upload
    "upload.title": ("上传场景", "Upload a scenario"),
    "upload.files": ("一个文件夹中的 CSV / Parquet 文件,或一个 XLSX 工作簿",
                     "a folder's CSV / Parquet files, or one XLSX workbook"),
    "upload.validate": ("校验", "Validate"),
    "upload.import": ("导入并使用该场景", "Import and use this scenario"),
    "upload.ok": ("场景无误:{households} 户,{needs} 项需求。",
                  "The scenario is valid: {households} households, {needs} needs."),
    "upload.imported": ("已导入,现正使用:{name}", "Imported; now using: {name}"),
    "upload.problems": ("发现 {n} 个问题 — 未导入任何数据。请按提示修改后重新上传。",
                        "{n} problem(s) found — nothing was imported. Fix them as the hints "
                        "say and upload again."),
    # coordinator
    "coord.run": ("运行分配", "Run the allocation"),
    "coord.running": ("正在分配……", "Allocating …"),
    "coord.step.load": ("读取场景 {digest}", "scenario {digest} loaded"),
    "coord.step.solve": ("按颜色依次求解(红 → 橙 → 黄 → 绿)",
                         "solving colour by colour (red → orange → yellow → green)"),
    "coord.done": ("分配完成:{status},用时 {seconds}", "Allocated: {status} in {seconds}"),
    "coord.cached": ("相同输入已求解过,结果取自缓存(运行 {run_id})",
                     "Same input solved before: results shown from the cache (run {run_id})"),
    "coord.none": ("选择场景、周次和中心后,点击“运行分配”。",
                   "Pick a scenario, a week and a centre, then press “Run the allocation”."),
    "coord.result": ("分配结果 · 运行 {run_id} · {status}", "Results · run {run_id} · {status}"),
    "coord.fill": ("各颜色满足率", "Fill rate by colour"),
    "coord.fill.metric": ("{colour}满足率", "{colour} fill rate"),
    "coord.fill.help": ("该颜色 {needs} 项需求被满足的比例的平均值(每项需求同等计)",
                        "mean served fraction of the colour's {needs} needs (every need "
                        "counts once)"),
    "coord.money": ("基金使用", "Money by fund"),
    "coord.unmet": ("未满足原因", "Unmet needs by reason"),
    "coord.map": ("站点满足率地图", "Stations by fill rate"),
    "coord.map.table": ("站点明细", "Stations"),
    "coord.plans": ("家庭救助套餐", "Household plans (assistance packages)"),
    "coord.search": ("搜索(家庭编号、站点、服务或原因)",
                     "Search (household, station, service or reason)"),
    "coord.tier.filter": ("颜色", "Colours"),
    "coord.plans.count": ("显示 {shown} / {total} 户", "showing {shown} of {total} households"),
    "coord.household": ("查看家庭", "Open a household"),
    "coord.household.none": ("(无)", "(none)"),
    "coord.household.title": ("家庭 {household}({colour})的每项需求",
                              "Every need of household {household} ({colour})"),
    "coord.pin": ("锁定或修改分配", "Pin or change an allocation"),
    "coord.pin.need": ("需求", "Need"),
    "coord.pin.source": ("由谁提供", "Served by"),
    "coord.pin.units": ("数量", "Units"),
    "coord.pin.add": ("加入锁定", "Add the pin"),
    "coord.pin.list": ("当前锁定", "Pins"),
    "coord.pin.clear": ("清除全部锁定", "Clear every pin"),
    "coord.pin.rerun": ("带锁定重新运行", "Re-run with the pins"),
    "coord.pin.kept": ("锁定均已保持({n} 条)", "Every pin was kept ({n})"),
    "coord.pin.notkept": ("{n} 条锁定未保持", "{n} pin(s) were not kept"),
    "coord.pin.error": ("锁定无法保持,未运行:", "Pins that cannot be kept; nothing was run:"),
    "coord.pin.invalid": ("锁定表有问题,未运行:", "The pins have problems; nothing was run:"),
    "coord.compare": ("与上一次运行比较", "Compare with the previous run"),
    "coord.compare.none": ("此前没有相同周次与中心的运行。",
                           "No earlier run for the same week and centre."),
    "coord.compare.counts": ("运行 {old} → {new}:得到更多 {gained} 户,失去 {lost} 户,"
                             "新增 {new_hh} 户,移出 {gone} 户",
                             "run {old} → {new}: {gained} gained, {lost} lost, {new_hh} new, "
                             "{gone} gone"),
    "coord.export": ("导出 Excel", "Export to Excel"),
    "coord.export.prepare": ("生成工作簿(资源方任务与未满足清单)",
                             "Build the workbook (providers' tasks and the unmet list)"),
    "coord.export.prepare.match": ("生成工作簿并匹配志愿者(全区约需数分钟)",
                                   "Build it with volunteers' weeks (matching; minutes for a "
                                   "district)"),
    "coord.export.building": ("正在生成工作簿……", "Building the workbook …"),
    "coord.export.building.match": ("正在匹配志愿者并生成工作簿……",
                                    "Matching volunteers and building the workbook …"),
    "coord.export.download": ("下载工作簿", "Download the workbook"),
    "coord.export.ready": ("工作簿:{sheets} 张工作表(资源方 {providers},志愿者 {volunteers})",
                           "Workbook: {sheets} sheets ({providers} providers, "
                           "{volunteers} volunteers)"),
    # fund lab
    "fund.building": ("正在建立预算模型……", "Building the budget lab …"),
    "fund.total": ("全部基金同比例调整", "All funds together"),
    "fund.budgets": ("各基金本周预算(元)", "Each fund's budget this week (yuan)"),
    "fund.reset": ("恢复原预算", "Reset to the scenario's budgets"),
    "fund.coverage": ("各颜色满足率", "Coverage by colour"),
    "fund.points": ("{points} 个百分点", "{points} points"),
    "fund.pof.points": ("公平代价(红色百分点)", "price of fairness (red points)"),
    "fund.delta.help": ("与场景原预算相比", "against the scenario's own budgets"),
    "fund.money": ("共使用 {money}(预算合计 {budget}) · 求解 {seconds}",
                   "{money} used of {budget} · solved in {seconds}"),
    "fund.marginal": ("每万元的边际价值", "The marginal value of ¥10,000 per fund"),
    "fund.streets": ("各街镇与颜色的满足率", "Coverage by street and colour"),
    "fund.curve": ("覆盖率—预算曲线", "Coverage vs budget"),
    "fund.curve.fund": ("变动的基金", "Fund that moves"),
    "fund.curve.all": ("全部基金同比例", "all funds together"),
    "fund.equity": ("公平调节", "Equity dial"),
    "fund.equity.mode": ("方式", "Mode"),
    "fund.equity.off": ("关闭", "off"),
    "fund.equity.floor": ("各街镇红色满足率下限", "floor on every street's red fill rate"),
    "fund.equity.deviation": ("各街镇与全市红色满足率之差上限",
                              "bound on a street's deviation from the city's red fill rate"),
    "fund.equity.value": ("数值", "Value"),
    "fund.pof": ("公平的代价(与不设调节相比)", "The price of fairness (against no dial)"),
    "fund.shortfall": ("各街镇共享供给,下限整体下调 {points} 个百分点",
                       "the streets share supply: every floor was lowered by {points} points"),
    "fund.save": ("保存为命名方案", "Save as a named scenario"),
    "fund.save.name": ("方案名称", "Scenario name"),
    "fund.save.button": ("保存方案", "Save"),
    "fund.saved": ("已保存的方案", "Saved scenarios"),
    "fund.compare": ("方案对比", "Scenarios side by side"),
    "fund.compare.none": ("保存两个或更多方案即可对比。",
                          "Save two or more scenarios to compare them."),
    "fund.error": ("求解失败:{message}", "The solve failed: {message}"),
    # data
    "data.upload": ("上传并校验", "Upload and validate"),
    "data.registry": ("五个联动资源登记", "The five-linkage registry"),
    "data.linkage": ("联动类型", "Linkage"),
    "data.service": ("服务", "Service"),
    "data.centre": ("中心", "Centre"),
    "data.any": ("全部", "any"),
    "data.rows": ("{n} 条", "{n} rows"),
    "data.households": ("按颜色统计的家庭", "Households by colour"),
    "data.af": ("多维贫困(Alkire–Foster)按街镇分解",
                "Multidimensional poverty (Alkire–Foster) by street"),
    "data.af.caption": ("H:贫困发生率;A:平均剥夺强度;M0 = H × A;各维度占比:该维度对街镇 M0 的贡献",
                        "H: headcount ratio; A: intensity; M0 = H × A; dimension shares: each "
                        "dimension's share of the street's M0"),
    # runs
    "runs.none": ("还没有运行记录({url})", "No runs yet ({url})"),
    "runs.history": ("运行历史", "History"),
    "runs.open": ("打开运行", "Open a run"),
    "runs.provenance": ("来源信息", "Provenance"),
    "runs.diff": ("比较两次运行", "Diff two runs"),
    "runs.old": ("较早的运行", "Older run"),
    "runs.new": ("较新的运行", "Newer run"),
    "runs.same": ("请选择两次不同的运行。", "Pick two different runs."),
    "runs.nochange": ("两次运行之间没有家庭发生变化。", "No household changed between the runs."),
    # misc
    "misc.yes": ("是", "yes"),
    "misc.no": ("否", "no"),
    "misc.all": ("全部", "all"),
}

COLUMNS: dict[str, tuple[str, str]] = {
    "household_id": ("家庭", "household"),
    "station_id": ("站点", "station"),
    "station": ("站点", "station"),
    "street": ("街镇", "street"),
    "street_id": ("街镇", "street"),
    "district_id": ("区县", "district"),
    "name": ("名称", "name"),
    "tier": ("颜色", "colour"),
    "colour": ("颜色", "colour"),
    "needs": ("需求数", "needs"),
    "fully_served": ("完全满足", "fully served"),
    "fill_rate": ("满足率", "fill rate"),
    "red_fill_rate": ("红色满足率", "red fill rate"),
    "money": ("金额", "money"),
    "package": ("救助套餐", "assistance package"),
    "unmet": ("未满足", "unmet"),
    "fund_id": ("基金", "fund"),
    "fund": ("基金", "fund"),
    "budget": ("预算", "budget"),
    "used": ("已用", "used"),
    "left": ("剩余", "left"),
    "marginal_value": ("每万元边际值", "value of ¥10,000"),
    "marginal_level": ("作用于颜色", "at colour"),
    "points_per_10k": ("每万元提升(百分点)", "points per ¥10,000"),
    "reason": ("原因", "reason"),
    "count": ("需求数", "needs"),
    "lat": ("纬度", "latitude"),
    "lon": ("经度", "longitude"),
    "need_id": ("需求", "need"),
    "service_id": ("服务编号", "service id"),
    "service": ("服务", "service"),
    "unit": ("单位", "unit"),
    "urgency": ("紧急程度", "urgency"),
    "quantity": ("需求数量", "needed"),
    "served": ("已满足", "served"),
    "fraction": ("满足比例", "served share"),
    "source_id": ("来源编号", "source id"),
    "linkage": ("联动", "linkage"),
    "who": ("提供方", "served by"),
    "units_from_source": ("该来源提供", "units from it"),
    "cost": ("费用", "cost"),
    "offer_id": ("供给", "offer"),
    "volunteer_id": ("志愿者", "volunteer"),
    "units": ("数量", "units"),
    "units_given": ("实际给予", "units given"),
    "kept": ("已保持", "kept"),
    "direction": ("变化", "change"),
    "fill_before": ("之前满足率", "fill before"),
    "fill_after": ("之后满足率", "fill after"),
    "change": ("变化量", "change"),
    "package_before": ("之前套餐", "package before"),
    "package_after": ("之后套餐", "package after"),
    "why": ("原因", "why"),
    "kind": ("类别", "kind"),
    "id": ("编号", "id"),
    "provider": ("资源方", "provider"),
    "what": ("内容", "what"),
    "capacity": ("容量", "capacity"),
    "unit_cost": ("单位成本", "unit cost"),
    "coverage": ("覆盖范围", "coverage"),
    "run_id": ("运行", "run"),
    "created_at": ("时间", "time"),
    "scenario": ("场景", "scenario"),
    "input_digest": ("输入摘要", "input digest"),
    "policy_digest": ("政策摘要", "policy digest"),
    "week": ("周次", "week"),
    "centre": ("中心", "centre"),
    "status": ("状态", "status"),
    "n": ("家庭数", "households"),
    "n_poor": ("贫困户", "poor"),
    "H": ("H 发生率", "H headcount"),
    "A": ("A 强度", "A intensity"),
    "M0": ("M0", "M0"),
    "contribution": ("占全区 M0", "share of all M0"),
    "driver": ("主要剥夺维度", "main deprivation"),
    "level": ("层级", "level"),
    "measure": ("度量", "measure"),
    "without_dial": ("不设调节", "without dial"),
    "with_dial": ("设调节", "with dial"),
    "price": ("代价", "price"),
    "equity": ("公平调节", "equity dial"),
    "money_total": ("总金额", "money total"),
    "table": ("表", "table"),
    "row": ("行", "row"),
    "column": ("列", "column"),
    "value": ("取值", "value"),
    "code": ("代码", "code"),
    "message": ("问题", "problem"),
    "hint": ("如何修改", "how to fix"),
    "total": ("合计", "total"),
    "floor": ("下限", "floor"),
    "max_alone": ("独自最多可达", "most it can reach alone"),
    "red_needs": ("红色需求", "red needs"),
    "field": ("项目", "field"),
    "district": ("区县", "district"),
    "capped": ("未达全部要求", "capped"),
    "policy": ("政策", "policy"),
    "solver": ("求解器", "solver"),
    "time": ("用时", "time"),
}



DIRECTIONS: dict[str, tuple[str, str]] = {
    "gained": ("得到更多", "gained"),
    "lost": ("失去", "lost"),
    "same": ("不变", "same"),
    "new": ("新增", "new"),
    "gone": ("移出", "gone"),
}


STATUSES: dict[str, tuple[str, str]] = {
    "optimal": ("最优", "optimal"),
    "feasible": ("可行(未证明最优)", "feasible (optimality not proven)"),
    "time_limit": ("达到时间上限", "time limit reached"),
    "infeasible": ("无可行解", "infeasible"),
    "error": ("出错", "error"),
}

REGISTRY_KINDS: dict[str, tuple[str, str]] = {
    "offer": ("供给", "offer"),
    "volunteer": ("志愿者", "volunteer"),
}

EQUITY_REASONS: dict[str, tuple[str, str]] = {
    "cannot_reach_alone": ("独自也无法达到", "cannot reach it even alone"),
    "shared_supply": ("与其他街镇共享供给", "shares supply with other streets"),
}


def say(key: str, lang: str = DEFAULT_LANGUAGE, **facts: object) -> str:
    """The text of ``key`` in ``lang`` (``zh``, ``en`` or ``both``), facts filled in.

    >>> say("coord.fill.metric", "en", colour="red"), say("page.runs", "both")
    ('red fill rate', '运行记录 / Runs')
    """
    zh, en = TEXT[key]
    return pick((zh.format(**facts), en.format(**facts)), lang)


def pick(pair: tuple[str, str], lang: str) -> str:
    """One of a (中文, English) pair, or both joined."""
    zh, en = pair
    if lang == "en":
        return en
    if lang == "both" and zh != en:
        return f"{zh} / {en}"
    return zh


def column(name: str, lang: str) -> str:
    """A table heading (the column's own name when the table has none for it)."""
    return pick(COLUMNS[name], lang) if name in COLUMNS else name


def code(kind: str, value: str, lang: str) -> str:
    """A contract code in words: ``kind`` is ``tier``, ``linkage``, ``level``, ``source``,
    ``unit``, ``dimension``, ``skill``, ``direction`` (of a run diff), ``equity`` (why a
    street could not be held to the dial), ``status`` (a solver outcome) or ``registry`` (a
    registry row's kind)."""
    table = {"tier": vocab.TIERS, "linkage": vocab.LINKAGES, "level": vocab.LEVELS,
             "source": vocab.FUND_SOURCES, "unit": vocab.UNITS, "dimension": vocab.DIMENSIONS,
             "skill": vocab.SKILLS, "direction": DIRECTIONS, "equity": EQUITY_REASONS,
             "status": STATUSES, "registry": REGISTRY_KINDS}[kind]
    return pick(table[value], lang) if value in table else value


def reason(value: str, lang: str) -> str:
    """An unmet reason code in words (Chinese from the CLI's catalogue, English its code in
    words); a need short for several reasons (``a;b``) lists each."""
    from wulian.contract.vocab import REASON_ZH  # the one catalogue of reason names in Chinese

    parts = [p for p in str(value).split(";") if p]
    return "; ".join(pick((REASON_ZH.get(p, p), p.replace("_", " ")), lang) for p in parts)
