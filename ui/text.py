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
    "page.inbox": ("收件箱 · 本周待办", "Inbox · this week"),
    "page.performance": ("服务绩效", "Service performance"),
    # sign-in (ui/signin.py)
    "signin.title": ("五联 · 登录", "wulian · sign in"),
    "signin.intro": ("请输入管理员为您创建的令牌(`wulian token create`)。"
                     "角色与中心范围与批处理服务相同。",
                     "Enter the token an administrator made for you (`wulian token create`). "
                     "Roles and centre fences are those of the batch service."),
    "signin.token": ("令牌", "Token"),
    "signin.submit": ("登录", "Sign in"),
    "signin.failed": ("令牌无效或已撤销", "the token is unknown or revoked"),
    "signin.revoked": ("您的令牌已被撤销或更改,已退出登录;请用有效的令牌重新登录",
                       "your token was revoked or changed: you are signed out; sign in again "
                       "with a valid token"),
    "signin.store_error": ("无法打开存储({url}),无法核对令牌:{message}",
                           "the store cannot be opened ({url}), so the token cannot be "
                           "checked: {message}"),
    "signin.out": ("退出登录", "Sign out"),
    "signin.as": ("已登录:{role} · 中心 {centre}", "signed in: {role} · centre {centre}"),
    "signin.no_pages": ("{role}角色在本应用中没有页面(请通过批处理服务回复任务)",
                        "the {role} role has no page in the app (answer tasks through the "
                        "batch service)"),
    "signin.fenced": ("协调员只能查看本辖区:显示 {centre}", "a coordinator sees only their own "
                      "subtree: showing {centre}"),
    "signin.centre_missing": ("中心 {centre} 不在此数据中", "centre {centre} is not in this data"),
    # the register's pages (inbox, performance, the fund ledger)
    "app.store": ("登记册:{url}", "Register: {url}"),
    "app.actor": ("记录人", "Recorded by"),
    "app.actor.help": ("您在登记册中所做的操作记在您登录所用的令牌下(编号、角色、中心、标签),"
                       "此处填写的姓名附在其后(来源:app)",
                       "what you change in the register is recorded under the token you signed "
                       "in with (id, role, centre, label), with the name given here after it "
                       "(via: app)"),
    "reg.empty": ("登记册是空的({url})。先导入一个场景:`wulian register import data/demo`,"
                  "或导入并模拟几周:`wulian simulate data/demo --weeks 4`"
                  "(使用同一个 `--store` 或 `$WULIAN_STORE`)。",
                  "The register is empty ({url}). Import a scenario first: "
                  "`wulian register import data/demo`, or import one and play a few weeks: "
                  "`wulian simulate data/demo --weeks 4` (with the same `--store` or "
                  "`$WULIAN_STORE`)."),
    "reg.error": ("无法打开登记册({url}):{message}",
                  "The register cannot be opened ({url}): {message}"),
    "reg.scope": ("显示 {name} 的 {stations} 个站点", "showing {name}: {stations} station(s)"),
    "reg.scope.all": ("显示全部 {stations} 个站点", "showing every station ({stations})"),
    # inbox
    "inbox.weeks": ("进行中的周:{weeks}", "Open week(s): {weeks}"),
    "inbox.noweek": ("没有进行中的周。开启一周:`wulian week open 2027-W02`。",
                     "No week is open. Open one: `wulian week open 2027-W02`."),
    "inbox.alerts": ("预警 · {n} 条待处理", "Alerts · {n} open"),
    "inbox.alerts.none": ("没有待处理的预警。", "No open alert."),
    "inbox.alerts.acknowledged": ("已确认、尚未解除的预警({n})",
                                  "Acknowledged, not yet resolved ({n})"),
    "inbox.evaluate": ("重新检查预警", "Re-check the alerts"),
    "inbox.evaluated": ("已按 {week} 检查预警:新增 {opened},更新 {updated},解除 {resolved}",
                        "Alerts checked at {week}: {opened} opened, {updated} updated, "
                        "{resolved} resolved"),
    "inbox.ack": ("确认预警", "Acknowledge an alert"),
    "inbox.ack.alert": ("预警", "Alert"),
    "inbox.ack.note": ("备注(已采取或将采取的措施)", "Note (what was or will be done)"),
    "inbox.ack.button": ("确认", "Acknowledge"),
    "inbox.ack.done": ("已确认预警 {alert}", "Alert {alert} acknowledged"),
    "inbox.tasks": ("待回复的任务 · {n}", "Tasks awaiting an answer · {n}"),
    "inbox.tasks.none": ("没有待回复的任务。", "No task awaits an answer."),
    "inbox.more": ("按编号列出前 {shown} 条,共 {total} 条;选择街镇或站点可缩小范围。",
                   "The first {shown} of {total} by id; pick a street or a station to narrow "
                   "them down."),
    "inbox.answer": ("记录任务答复", "Record a task's answer"),
    "inbox.answer.task": ("任务", "Task"),
    "inbox.answer.status": ("状态", "Status"),
    "inbox.answer.units": ("完成数量(已完成时留空即全部完成)",
                           "Units delivered (empty, when delivered: all of them)"),
    "inbox.answer.date": ("日期", "Date"),
    "inbox.answer.reason": ("原因(拒绝或未完成时)", "Reason (when declined or not delivered)"),
    "inbox.answer.pick": ("(请选择)", "(choose)"),
    "inbox.answer.no_status": ("未记录:请选择状态", "Not recorded: choose a status"),
    "inbox.moved": ("未记录:所选项目已在别处答复或已变更,请核对所选项目后再提交",
                    "Nothing recorded: the item chosen was answered elsewhere or changed; "
                    "check the item chosen and submit again"),
    "inbox.answer.no_reason": ("未记录:拒绝须说明原因(拒绝后不能更改)",
                               "Not recorded: a decline needs a reason (it cannot be changed "
                               "afterwards)"),
    "inbox.answer.none": ("(无)", "(none)"),
    "inbox.answer.button": ("记录答复", "Record the answer"),
    "inbox.answer.done": ("已记录任务 {task} 的答复:{status}",
                          "Answer to {task} recorded: {status}"),
    "inbox.answer.same": ("任务 {task} 已是这个答复,未作改动",
                          "Task {task} already had this answer: nothing changed"),
    "inbox.facts": ("{household} · {station} · {colour} · {what} · 计划 {units} · {week}"
                    "({first} 至 {last})",
                    "{household} · {station} · {colour} · {what} · {units} planned · {week} "
                    "({first} to {last})"),
    "inbox.refused": ("未记录:{n} 个问题(中文 / English)",
                      "Not recorded: {n} problem(s) (中文 / English)"),
    "inbox.visits": ("待完成的巡查走访 · {n}", "Monitoring visits due · {n}"),
    "inbox.visits.none": ("没有待完成的巡查走访。", "No monitoring visit is due."),
    "inbox.visit": ("记录走访结果", "Record a visit's result"),
    "inbox.visit.task": ("走访", "Visit"),
    "inbox.visit.outcome": ("结果", "Outcome"),
    "inbox.visit.indicators": ("观察到的剥夺指标(未观察的不填,保持原值)",
                               "Deprivations observed (leave out what was not observed: it "
                               "is kept)"),
    "inbox.visit.unobserved": ("未观察(现为 {value})", "not observed (now {value})"),
    "inbox.visit.deprived": ("1 · 有剥夺", "1 · deprived"),
    "inbox.visit.fine": ("0 · 无剥夺", "0 · not deprived"),
    "inbox.visit.needs": ("发现的新需求(服务:数量;……)", "New needs found (service:quantity; …)"),
    "inbox.visit.needs.help": ("例如 meal_help:4; nursing:2。可用的服务:{services}",
                               "e.g. meal_help:4; nursing:2. Services: {services}"),
    "inbox.visit.note": ("备注", "Note"),
    "inbox.visit.button": ("记录走访结果", "Record the result"),
    "inbox.visit.done": ("已记录走访 {task}:{outcome};新需求 {needs} 项",
                         "Visit {task} recorded: {outcome}; {needs} new need(s)"),
    # an alert's numbers in words, one sentence per rule
    "alert.monitoring_overdue": ("{colour}家庭,每 {cycle} 周巡查一次;上次走访 {last},"
                                 "已过 {weeks} 周",
                                 "{colour} household, to be visited every {cycle} week(s); last "
                                 "visit {last}, {weeks} weeks ago"),
    "alert.monitoring_overdue.never": ("{colour}家庭,每 {cycle} 周巡查一次;从未走访",
                                       "{colour} household, to be visited every {cycle} "
                                       "week(s); never visited"),
    "alert.unmet": ("{colour}家庭有 {needs} 项需求连续 {weeks} 周未满足",
                    "{colour} household: {needs} need(s) unmet for {weeks} weeks in a row"),
    "alert.colour_worse": ("颜色由{before}变为{after}({on} 评估,第 {version} 版)",
                           "colour went from {before} to {after} (assessed {on}, version "
                           "{version})"),
    "alert.fund_runout": ("已支出 {spent},每周约 {burn};照此本期将支出 {projected},"
                          "超过本期预算 {budget},约 {weeks} 周后用尽",
                          "{spent} spent, about {burn} a week: at this rate the period will "
                          "spend {projected}, more than its budget of {budget}; empty in about "
                          "{weeks} weeks"),
    "alert.fund_underspend": ("已支出 {spent},只占已累计 {accrued} 的 {share};"
                              "它可支付的 {needs} 项需求仍在等待",
                              "{spent} spent, only {share} of the {accrued} accrued, while "
                              "{needs} need(s) it could pay for wait"),
    "alert.provider_declines": ("近 {weeks} 周 {tasks} 项任务中有 {failed} 项被拒绝或未完成"
                                "({share})",
                                "{failed} of {tasks} tasks declined or not delivered over the "
                                "last {weeks} weeks ({share})"),
    "alert.capacity_short": ("{service}在{street}因能力不足而未满足的数量逐周增加:{units}",
                             "{service} in {street}: units unmet for lack of capacity grow "
                             "week after week: {units}"),
    # performance
    "perf.none": ("还没有开启过任何一周,暂无绩效可看。",
                  "No week has been opened yet: there is no performance to show."),
    "perf.weeks": ("周次范围", "Weeks"),
    "perf.group": ("分组", "Group by"),
    "perf.fill": ("各颜色每周满足率", "Fill rate by colour, week by week"),
    "perf.fill.caption": ("满足率:每周需求中已完成的份额(部分完成按比例计),按颜色平均;"
                          "进行中的周只计已回复完成的部分。",
                          "Fill rate: the share of each week's needs delivered (a need "
                          "delivered in part counts in part), averaged per colour; a week still "
                          "open counts what has been answered as delivered so far."),
    "perf.monitoring": ("巡查走访按时完成率(每周)", "Monitoring visits made in their week"),
    "perf.by": ("按{group}", "By {group}"),
    "perf.by.caption": ("任务完成率 = 完成的任务 ÷ 发出的任务;计划金额支出率 = 已支出 ÷ 计划金额"
                        "(不花钱的任务不计入)。元、件、小时不相加,故不列合计数量。",
                        "Share of tasks delivered = tasks delivered ÷ tasks sent; share of money "
                        "planned spent = money spent ÷ money planned (tasks costing nothing are "
                        "not in it). Yuan, items and hours are not added up: no total of units "
                        "is shown."),
    "perf.fill.table": ("满足率明细(周 × 颜色)", "Fill rate, week × colour"),
    "perf.monitoring.table": ("巡查明细(周 × 颜色)", "Monitoring, week × colour"),
    "perf.reach": ("惠及(每万元惠及户数)", "Reach (households per ¥10,000)"),
    "perf.download": ("下载绩效报告(Excel)", "Download the performance report (Excel)"),
    "perf.title": ("{centre} · {first} 至 {last} · 按{group}",
                   "{centre} · {first} to {last} · by {group}"),
    "perf.declined": ("拒绝:{reason}", "declined: {reason}"),
    # the fund ledger (in the fund lab)
    "ledger.title": ("资金台账(登记册)", "The fund ledger (register)"),
    "ledger.none": ("还没有开启过任何一周,资金台账还是空的。",
                    "No week has been opened yet: the ledger is empty."),
    "ledger.caption": ("截至 {week}。已累计 = 每周预算 × 本期已过周数;余额 = 已累计 − 已支出 − "
                       "待结算;预计本期支出 = 已支出 + 待结算 + 每周支出 × 本期剩余周数。",
                       "At {week}. Accrued = weekly budget × weeks of the period so far; "
                       "balance = accrued − spent − outstanding; projected = spent + "
                       "outstanding + spent per week × weeks left in the period."),
    "ledger.burn": ("各基金每周支出", "Spent per week, by fund"),
    "ledger.by_week": ("按基金、街镇和周次的明细", "By fund, street and week"),
    "ledger.marginal": ("现在的一元与平常一周的一元", "A yuan now against a yuan in an ordinary "
                                                   "week"),
    "ledger.marginal.toggle": ("计算(为 {week} 建立预算模型)",
                               "Compute it (builds the budget lab of {week})"),
    "ledger.marginal.caption": ("每万元的边际价值:多给该基金一万元,满足率提高的百分点(在它首先"
                                "起作用的颜色)。“现在”按 {week} 的需求和余额,"
                                "“平常一周”按同样的需求和每周预算。现在更高:本期的钱现在用更值;平常一周更高:留到以后更值。",
                                "The marginal value of ¥10,000: the fill-rate points one more "
                                "¥10,000 to the fund buys (at the colour where it first "
                                "matters). “Now”: {week}'s needs at the fund's balance; "
                                "“ordinary week”: the same needs at its weekly budget. Higher "
                                "now: the period's money does more spent now; higher in an "
                                "ordinary week: it does more kept for later."),
    "ledger.building": ("正在建立 {week} 的预算模型……", "Building the budget lab of {week} …"),
    "ledger.verdict.now": ("现在用", "spend now"),
    "ledger.verdict.later": ("留到以后", "keep for later"),
    "ledger.verdict.same": ("差不多", "about the same"),
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
    # Streamlit's own texts in the file box (ui/data_upload.py, uploader_texts)
    "upload.browse": ("选择文件", "Choose files"),
    "upload.drop": ("松开鼠标即可上传", "Drop the files here"),
    "upload.limit": ("拖放文件到此处 · 每个文件不超过 {mb} MB · CSV、Parquet、XLSX",
                     "drag and drop files here · up to {mb} MB per file · CSV, Parquet, XLSX"),
    "upload.import": ("导入并使用该场景", "Import and use this scenario"),
    "upload.last": ("上次上传的文件:{names}(离开页面后文件框会清空,校验报告保留)",
                    "Last upload: {names} (the file box empties when you leave the page; the "
                    "report stays)"),
    "upload.validating": ("正在读取并校验 {files} 个文件({size})……",
                          "Reading and validating {files} file(s) ({size}) …"),
    "upload.validated": ("校验完成", "Validation done"),
    "upload.refused": ("校验未通过:{n} 个问题", "Validation failed: {n} problem(s)"),
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
    "coord.result": ("分配结果 · {where} · 运行 {run_id} · {status}",
                     "Results · {where} · run {run_id} · {status}"),
    "coord.scope.all": ("范围:整个网络", "Scope: the whole network"),
    "coord.scope.centre": ("范围:{name}({level})及其下属站点", "Scope: {name} ({level}) and the "
                           "stations under it"),
    "coord.basis.held": ("其余网络按运行 {run} 的分配保持,本次只使用剩下的供给与预算,因此满足率与"
                         "全网运行不同。", "The rest of the network is held at run {run}'s "
                         "allocation and this run uses only what is left, so its fill rates "
                         "differ from a whole-network run's."),
    "coord.basis.alone": ("没有已保存的全网运行可保持:本次把全部供给与预算都用于这个中心。",
                          "No stored whole-network run to hold the rest at: this run gave this "
                          "centre all of the supply and budgets."),
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
    "coord.pin.label": ("{label} · 容量 {capacity} {unit} · 单价 {cost}",
                        "{label} · capacity {capacity} {unit} · {cost} a unit"),
    "coord.pin.label.volunteer": ("{label} · 每周 {hours} 小时", "{label} · {hours} hours a week"),
    "coord.pin.most": ("本条锁定最多 {most} {unit}(需求、每户上限与容量)",
                       "at most {most} {unit} for this pin (the need, caps per household and "
                       "capacity)"),
    "coord.pin.held": ("不能锁定的来源:{sources}", "Sources that cannot be pinned: {sources}"),
    "coord.other": ("下面的结果不是当前所选场景、周次或中心的:它们属于 {scenario} · {week} · "
                    "{centre} 的运行。请点击“运行分配”更新。",
                    "The results below are not of the scenario, week or centre chosen now: "
                    "they are a run of {scenario} · {week} · {centre}. Press “Run the "
                    "allocation” to update them."),
    "coord.stale": ("锁定已改变:下面的结果是改变之前的,请重新运行。",
                    "The pins changed: the results below are from before; run again."),
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
                             "换了提供方 {moved} 户,新增 {new_hh} 户,移出 {gone} 户",
                             "run {old} → {new}: {gained} gained, {lost} lost, {moved} with "
                             "another provider, {new_hh} new, {gone} gone"),
    "coord.export": ("导出 Excel", "Export to Excel"),
    "coord.export.prepare": ("生成工作簿(资源方任务与未满足清单)",
                             "Build the workbook (providers' tasks and the unmet list)"),
    "coord.export.prepare.match": ("生成工作簿并匹配志愿者(全区约需数分钟)",
                                   "Build it with volunteers' weeks (matching; minutes for a "
                                   "district)"),
    "coord.export.building": ("正在生成工作簿……", "Building the workbook …"),
    "coord.export.building.match": ("正在匹配志愿者并生成工作簿……",
                                    "Matching volunteers and building the workbook …"),
    "coord.export.done": ("工作簿已生成", "The workbook is ready"),
    "coord.export.download": ("下载工作簿", "Download the workbook"),
    "coord.export.ready": ("工作簿:{sheets} 张工作表(资源方 {providers},志愿者 {volunteers})",
                           "Workbook: {sheets} sheets ({providers} providers, "
                           "{volunteers} volunteers)"),
    # fund lab
    "fund.building": ("正在建立预算模型……", "Building the budget lab …"),
    "fund.lab": ("预算实验室 · {scenario}", "The budget lab · {scenario}"),
    "fund.total": ("全部基金同比例调整", "All funds together"),
    "fund.effective": ("实际使用 {amount}({scale}%)", "in use: {amount} ({scale}%)"),
    "fund.curve.axis": ("预算(元)", "budget (yuan)"),
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
    "runs.scope": ("这两次运行的范围不同({old} 与 {new}),只比较较新运行范围内的家庭。",
                   "The two runs have different scopes ({old} and {new}): only the households "
                   "in the newer run's scope are compared."),
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
    # the register's pages
    "alert": ("预警", "alert"),
    "severity": ("级别", "severity"),
    "since": ("起始周", "since"),
    "subject_id": ("对象", "about"),
    "words": ("情况", "what the numbers say"),
    "state": ("状态", "state"),
    "ack_by": ("确认人", "acknowledged by"),
    "ack_at": ("确认时间", "acknowledged at"),
    "ack_note": ("备注", "note"),
    "task_id": ("任务", "task"),
    "provider_id": ("服务方", "provider"),
    "slot": ("时段", "slot"),
    "hours": ("小时", "hours"),
    "units_delivered": ("完成数量", "units delivered"),
    "answered_on": ("答复日期", "answered on"),
    "tasks": ("任务数", "tasks"),
    "accepted": ("接受", "accepted"),
    "declined": ("拒绝", "declined"),
    "delivered": ("完成", "delivered"),
    "not_delivered": ("未完成", "not delivered"),
    "median_days": ("完成天数中位数", "median days to delivery"),
    # money, everywhere these three head a column (the ledger, performance, the quarter)
    "planned": ("计划金额", "money planned"),
    "committed": ("承诺金额", "money committed"),
    "spent": ("已支出", "money spent"),
    "delivered_share": ("任务完成率", "share of tasks delivered"),
    "spent_share": ("计划金额支出率", "share of money planned spent"),
    "declined_unknown": ("拒绝:未说明原因", "declined: no reason given"),
    "needs_planned": ("计划满足的需求", "needs planned"),
    "needs_delivered": ("已满足的需求", "needs delivered"),
    "planned_rate": ("计划满足率", "planned rate"),
    "visits_planned": ("计划走访", "visits planned"),
    "visits_made": ("已走访", "visits made"),
    "made": ("已走访", "visits made"),
    "on_time": ("按时率", "on time"),
    "households": ("惠及户数", "households"),
    "households_per_10k": ("每万元惠及户数", "households per ¥10,000"),
    "weekly_budget": ("每周预算", "weekly budget"),
    "period": ("资金周期", "period"),
    "weeks": ("已过周数", "weeks so far"),
    "accrued": ("已累计", "accrued"),
    "outstanding": ("待结算", "outstanding"),
    "balance": ("余额", "balance"),
    "burn": ("每周支出", "spent per week"),
    "weeks_left": ("剩余周数", "weeks left"),
    "period_budget": ("本期预算", "period budget"),
    "projected": ("预计本期支出", "projected"),
    "projected_left": ("预计期末结余", "projected left at the end"),
    "points_now": ("现在:每万元提升(百分点)", "now: points per ¥10,000"),
    "points_then": ("平常一周:每万元提升(百分点)", "ordinary week: points per ¥10,000"),
    "verdict": ("建议", "verdict"),
    # the output tables' columns, as the workbooks head them (planning/workbook.py)
    "source_kind": ("来源类别", "source kind"),
    "km": ("距离(公里)", "distance (km)"),
    "resource_id": ("资源", "resource"),
    "available": ("可用", "available"),
    "visit_id": ("走访", "visit"),
    "slot_zh": ("时段", "slot"),
    "slot_en": ("时段(英文)", "slot (English)"),
    "service_zh": ("服务名称", "service name"),
    "visits": ("走访次数", "visits"),
    "max_hours": ("每周时长上限", "most hours a week"),
    "available_slots": ("可用时段", "available slots"),
    "utilisation": ("使用率", "utilisation"),
    "open_needs": ("待满足需求", "open needs"),
    "colour_zh": ("颜色", "colour"),
    "tier_zh": ("颜色", "colour"),
    "sheet": ("工作表", "sheet"),
    "about": ("内容", "what it holds"),
    "rows": ("行数", "rows"),
}



DIRECTIONS: dict[str, tuple[str, str]] = {
    "gained": ("得到更多", "gained"),
    "lost": ("失去", "lost"),
    "same": ("不变", "same"),
    "new": ("新增", "new"),
    "gone": ("移出", "gone"),
    "moved": ("换了提供方", "another provider"),
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

# What a recorded run was (``runs.kind`` in the run store).
RUN_KINDS: dict[str, tuple[str, str]] = {
    "allocate": ("每周分配", "weekly allocation"),
    "week": ("每周循环", "weekly cycle"),
    "quarter": ("季度计划", "quarterly plan"),
}

SEVERITIES: dict[str, tuple[str, str]] = {
    "high": ("高", "high"),
    "medium": ("中", "medium"),
    "low": ("低", "low"),
}

ALERT_STATES: dict[str, tuple[str, str]] = {
    "open": ("待处理", "open"),
    "acknowledged": ("已确认", "acknowledged"),
    "resolved": ("已解除", "resolved"),
}

TASK_KINDS: dict[str, tuple[str, str]] = {
    "service": ("服务", "service"),
    "visit": ("上门服务", "service visit"),
    "monitoring": ("巡查走访", "monitoring visit"),
    "visit+monitoring": ("上门服务兼巡查", "service and monitoring visit"),
}

# Where an allocation's units come from (``allocations.source_kind``) and what a utilisation
# row is about (``utilisation.kind``).
SOURCE_KINDS: dict[str, tuple[str, str]] = {
    "offer": ("供给", "offer"),
    "fund": ("基金", "fund"),
    "volunteer_pool": ("志愿者时长", "volunteer hours"),
    "volunteer": ("志愿者", "volunteer"),
    "service+monitoring": ("服务并巡查", "service with monitoring"),
    "free": ("空闲", "free"),
}

# The workbooks' sheets (planning/workbook.py): their titles and what they hold.
SHEETS: dict[str, tuple[str, str]] = {
    "allocations": ("分配明细", "allocations"),
    "unmet": ("未满足需求", "unmet needs"),
    "plans": ("各户救助套餐", "household plans"),
    "utilisation": ("资源使用", "resource use"),
    "summary": ("街镇汇总", "street summary"),
    "assignments": ("志愿者走访安排", "volunteer visits"),
    "schedules": ("志愿者周表", "volunteer weeks"),
    "unplaced": ("未安排的走访", "unplaced visits"),
    "load": ("志愿者负荷", "volunteer load"),
    "money": ("资金计划", "money plan"),
    "volunteers": ("志愿者时长", "volunteer hours"),
    "fill_rate": ("满足率", "fill rate"),
    "funds": ("基金", "funds"),
    "explanation": ("说明", "explanation"),
    "problems": ("问题清单", "problems"),
}
SHEET_ABOUT: dict[str, tuple[str, str]] = {
    "allocations": ("每项需求由哪个来源提供多少、花费多少",
                    "which source gives each need how much, at what cost"),
    "unmet": ("未能满足的数量及原因", "what could not be given, and why"),
    "plans": ("每户的救助套餐与未满足部分", "each household's package and what it still lacks"),
    "utilisation": ("每项供给、基金与志愿者时长的使用", "how much of each offer, fund and "
                    "volunteer pool was used"),
    "summary": ("按街镇与颜色汇总", "by street and colour"),
    "assignments": ("每次走访由哪位志愿者在哪个时段完成", "which volunteer makes each visit, when"),
    "schedules": ("每位志愿者一周的时段", "each volunteer's week, slot by slot"),
    "unplaced": ("未能安排的走访及原因", "visits that could not be placed, and why"),
    "load": ("每位志愿者的时长、走访与距离", "each volunteer's hours, visits and distance"),
    "money": ("每周每个基金的计划支出", "each fund's planned spending by week"),
    "volunteers": ("每周志愿者时长", "volunteer hours by week"),
    "fill_rate": ("每周各颜色满足率", "fill rate by week and colour"),
    "funds": ("基金的季度安排", "the funds over the quarter"),
    "explanation": ("计划的说明", "what the plan says"),
}

GROUPS: dict[str, tuple[str, str]] = {
    "provider": ("服务方", "provider"),
    "linkage": ("联动类型", "linkage"),
    "fund": ("基金", "fund"),
    "street": ("街镇", "street"),
    "colour": ("颜色", "colour"),
}

EQUITY_REASONS: dict[str, tuple[str, str]] = {
    "cannot_reach_alone": ("独自也无法达到", "cannot reach it even alone"),
    "shared_supply": ("与其他街镇共享供给", "shares supply with other streets"),
}


# The pages' names in the sidebar's navigation in the bilingual mode: "中文 / English" of the
# full names (协调员 · 每周分配 / Coordinator · weekly allocation) is wider than the sidebar and
# was cut with "…" at 1440 px; these short pairs fit (tests/test_ui_browser.py measures them).
# In Chinese or English alone the full names fit and are kept.
NAV_SHORT: dict[str, tuple[str, str]] = {
    "page.inbox": ("收件箱", "Inbox"),
    "page.coordinator": ("协调员", "Coordinator"),
    "page.performance": ("服务绩效", "Performance"),
    "page.fund": ("预算实验室", "Fund lab"),
    "page.data": ("数据", "Data"),
    "page.runs": ("运行记录", "Runs"),
}


def nav_title(key: str, lang: str = DEFAULT_LANGUAGE) -> str:
    """A page's name in the navigation: its title, or in the bilingual mode its short pair.

    >>> nav_title("page.coordinator", "both"), nav_title("page.coordinator", "zh")
    ('协调员 / Coordinator', '协调员 · 每周分配')
    """
    if lang == "both" and key in NAV_SHORT:
        return pick(NAV_SHORT[key], lang)
    return say(key, lang)


def say(key: str, lang: str = DEFAULT_LANGUAGE, **facts: object) -> str:
    """The text of ``key`` in ``lang`` (``zh``, ``en`` or ``both``), facts filled in.

    >>> say("coord.fill.metric", "en", colour="red"), say("page.runs", "both")
    ('red fill rate', '运行记录 / Runs')
    """
    zh, en = TEXT[key]
    # A fact given as a (中文, English) pair goes into each language's text in its own
    # language: in "both", "红色满足率 / red fill rate", not "红色 / red满足率 / red …".
    zh_facts = {k: v[0] if isinstance(v, tuple) else v for k, v in facts.items()}
    en_facts = {k: v[1] if isinstance(v, tuple) else v for k, v in facts.items()}
    return pick((zh.format(**zh_facts), en.format(**en_facts)), lang)


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
    street could not be held to the dial), ``status`` (a solver outcome), ``registry`` (a
    registry row's kind), ``run_kind`` (a stored run's), ``severity`` and ``alert_state`` (of
    an alert), ``task_status``,
    ``task_kind``, ``decline`` (a task's reason), ``outcome`` (of a visit), ``slot`` (a
    volunteer's half day) or ``group`` (a performance grouping)."""
    table = {"tier": vocab.TIERS, "linkage": vocab.LINKAGES, "level": vocab.LEVELS,
             "source": vocab.FUND_SOURCES, "unit": vocab.UNITS, "dimension": vocab.DIMENSIONS,
             "skill": vocab.SKILLS, "direction": DIRECTIONS, "equity": EQUITY_REASONS,
             "status": STATUSES, "registry": REGISTRY_KINDS, "severity": SEVERITIES,
             "run_kind": RUN_KINDS,
             "alert_state": ALERT_STATES, "task_status": vocab.TASK_STATUSES,
             "task_kind": TASK_KINDS, "decline": vocab.DECLINE_REASONS,
             "outcome": vocab.VISIT_OUTCOMES, "slot": vocab.SLOTS, "group": GROUPS}[kind]
    return pick(table[value], lang) if value in table else value


def reason(value: str, lang: str) -> str:
    """An unmet reason code in words (Chinese from the CLI's catalogue, English its code in
    words); a need short for several reasons (``a;b``) lists each."""
    from wulian.contract.vocab import REASON_ZH  # the one catalogue of reason names in Chinese

    parts = [p for p in str(value).split(";") if p]
    return "; ".join(pick((REASON_ZH.get(p, p), p.replace("_", " ")), lang) for p in parts)
