"""What every ``wulian`` command prints with: the console, tables, the validation report."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table
from rich.text import Text

from wulian.contract.problems import Problem, ValidationError
from wulian.demand.policy import PolicyError
from wulian.planning.fmt import count
from wulian.planning.limits import shown_problems
from wulian.planning.scenario import Scenario, load_scenario

# Wide enough for the bilingual tables when output goes to a file or a pipe. What a command
# reports goes to stdout (quiet under -q and --json, where stdout is the JSON alone); errors
# go to stderr through ``errors``.
console = Console(highlight=False, width=max(Console().width, 120))
errors = Console(stderr=True, highlight=False, soft_wrap=True)

# Exit codes: what a script can rely on.
OK, FAILED, USAGE = 0, 1, 2


class CliError(Exception):
    """A mistake the user can fix, said in one bilingual line; ``code`` is the exit code:
    ``FAILED`` (1) for the data or the domain (nothing to allocate, bad data), ``USAGE`` (2)
    for the command line itself (a malformed option, an unknown id)."""

    def __init__(self, zh: str, en: str | None = None, code: int = USAGE):
        # en None: zh already says it in both languages (a library's "中文 / English" message).
        super().__init__(zh if en is None else f"{zh} / {en}")
        self.code = code


def usage(zh: str, en: str) -> CliError:
    return CliError(zh, en, USAGE)


def failed(zh: str, en: str) -> CliError:
    return CliError(zh, en, FAILED)


def refused(err: Exception) -> CliError:
    """The library's refusal (a register, cycle, quarter, alert or token error, whose message
    is already "中文 / English") as the command's failure: exit 1."""
    return CliError(str(err), code=FAILED)


def say_error(message: str) -> None:
    """One line on stderr, whatever -q says (a message of several lines is joined: a script
    reads one line)."""
    line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    errors.print(Text.assemble(("错误 / error:", "bold red"), f" {line}"))


def set_verbosity(quiet: bool) -> None:
    """-q (and --json): the console prints nothing; errors still reach stderr."""
    console.quiet = quiet


def frame_table(frame: pd.DataFrame, title: str, formats: dict | None = None,
                 index: bool = True, labels: dict[str, tuple[str, str]] | None = None) -> Table:
    """``frame`` as a table; ``formats`` by column code. With ``labels`` (may be empty) the
    columns are headed in both languages ("周次 week"): ``labels``' words, else the app's
    (``ui.text.COLUMNS``), else the code."""
    formats = formats or {}
    table = Table(title=title, title_justify="left", header_style="bold")
    if index:
        table.add_column(str(frame.index.name or ""))
    for col in frame.columns:
        numeric = pd.api.types.is_numeric_dtype(frame[col])
        table.add_column(str(col) if labels is None else heading(str(col), labels),
                         justify="right" if numeric else "left")
    for key, row in frame.iterrows():
        cells = [str(key)] if index else []
        for col in frame.columns:
            value = row[col]
            fmt = formats.get(col, count if isinstance(value, int | float) else str)
            cells.append(fmt(value))
        table.add_row(*cells)
    return table


# What refused input left undone, said after its problems (Chinese, English).
NOT_IMPORTED = ("未导入任何数据", "nothing was imported")
NOT_RECORDED = ("未记录任何回复", "no answer was recorded")
POLICY_NOT_USED = ("策略未采用,命令未执行", "the policy was not used: nothing was done")


def heading(code: str, labels: dict[str, tuple[str, str]]) -> str:
    """A column's heading in both languages, Chinese first (see :func:`frame_table`)."""
    from wulian.ui.text import COLUMNS

    words = labels.get(code) or COLUMNS.get(code)
    return f"{words[0]} {words[1]}" if words else code


def print_problems(problems: list[Problem], outcome: tuple[str, str] = NOT_IMPORTED) -> None:
    """The validation report in Chinese and English (on stdout; under -q one line on stderr
    says how many): the problems the service would answer with (``shown_problems``: the first
    ``max_problems``, each value cut to an excerpt), then how many more there are; ``outcome``
    says what was left undone (a scenario not imported, answers not recorded)."""
    zh, en = outcome
    if console.quiet:
        say_error(f"发现 {len(problems)} 个问题,{zh} / {len(problems)} problem(s) found, {en}")
        return
    console.print(f"[bold red]发现 {len(problems)} 个问题 / {len(problems)} problem(s) found"
                  f"[/] — {zh} / {en}")
    shown = shown_problems(problems)
    for p in shown:
        where = p.table + (f" 第{p.row}行 row {p.row}" if p.row is not None else "")
        where += f" · {p.column}" if p.column else ""
        value = f" = {p.value!r}" if p.value else ""
        # Text, not markup: a cell's value is the user's text ("[red]" must print as is).
        console.print(Text.assemble((where, "bold"), f"{value}: {p.message_zh} / "
                                    f"{p.message_en}\n    → {p.hint_zh} / {p.hint_en}"))
    more = len(problems) - len(shown)
    if more:
        console.print(f"… 另有 {more} 个问题 / and {more} more (--report FILE 写出全部 / "
                      "writes them all)", markup=False)


def policy_problems(err: PolicyError) -> list[Problem]:
    """A policy file's problems as a scenario's are reported: where (the file, the key), what
    is wrong and how to fix it."""
    where = Path(err.source).name if err.source else "policy"
    return [Problem(where, "policy_problem", column=p.key,
                    detail={"problem_zh": p.zh, "problem_en": p.en, "fix_zh": p.hint_zh,
                            "fix_en": p.hint_en}) for p in err.problems]


def load_or_report(path: str, policy=None) -> Scenario | None:
    """The validated scenario at ``path``, or ``None`` after printing every problem."""
    with console.status("读取并校验 / reading and validating …"):
        try:
            return load_scenario(path, policy)
        except ValidationError as err:
            problems = err.problems
    report_problems(problems)
    return None


def report_problems(problems: list[Problem], outcome: tuple[str, str] = NOT_IMPORTED) -> None:
    """Refused input (a scenario, answer workbooks, a policy): its problems on stdout, and one
    line on stderr saying so."""
    print_problems(problems, outcome)
    if not console.quiet:  # the report went to stdout; the failure is said on stderr too
        zh, en = outcome
        say_error(f"发现 {len(problems)} 个问题,{zh} / {len(problems)} problem(s) found: {en}")


def missing_extra(module: str, extra: str) -> bool:
    """Whether ``module`` is missing; if so, say which extra of wulian brings it."""
    import importlib.util

    if importlib.util.find_spec(module) is not None:
        return False
    say_error(f"需要安装 {extra} 扩展:pip install 'wulian[{extra}]' / this needs the "
              f"`{extra}` extra: pip install 'wulian[{extra}]'")
    return True
