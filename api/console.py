"""What every ``wulian`` command prints with: the console, tables, the validation report."""

from __future__ import annotations

import pandas as pd
from rich.console import Console
from rich.table import Table
from rich.text import Text

from wulian.contract.problems import Problem, ValidationError
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
                 index: bool = True) -> Table:
    formats = formats or {}
    table = Table(title=title, title_justify="left", header_style="bold")
    if index:
        table.add_column(str(frame.index.name or ""))
    for col in frame.columns:
        numeric = pd.api.types.is_numeric_dtype(frame[col])
        table.add_column(str(col), justify="right" if numeric else "left")
    for key, row in frame.iterrows():
        cells = [str(key)] if index else []
        for col in frame.columns:
            value = row[col]
            fmt = formats.get(col, count if isinstance(value, int | float) else str)
            cells.append(fmt(value))
        table.add_row(*cells)
    return table


def print_problems(problems: list[Problem]) -> None:
    """The validation report in Chinese and English (on stdout; under -q one line on stderr
    says how many): the problems the service would answer with (``shown_problems``: the first
    ``max_problems``, each value cut to an excerpt), then how many more there are."""
    if console.quiet:
        say_error(f"发现 {len(problems)} 个问题,场景未导入 / {len(problems)} problem(s) found, "
                  "nothing was imported")
        return
    console.print(f"[bold red]发现 {len(problems)} 个问题 / {len(problems)} problem(s) found"
                  "[/] — 场景未导入 / nothing was imported")
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


def load_or_report(path: str, policy=None) -> Scenario | None:
    """The validated scenario at ``path``, or ``None`` after printing every problem."""
    with console.status("读取并校验 / reading and validating …"):
        try:
            return load_scenario(path, policy)
        except ValidationError as err:
            problems = err.problems
    report_problems(problems)
    return None


def report_problems(problems: list[Problem]) -> None:
    """Refused input (a scenario, answer workbooks): its problems on stdout, and one line on
    stderr saying so."""
    print_problems(problems)
    if not console.quiet:  # the report went to stdout; the failure is said on stderr too
        say_error(f"发现 {len(problems)} 个问题,未导入任何数据 / {len(problems)} problem(s) "
                  "found: nothing was imported")


def missing_extra(module: str, extra: str) -> bool:
    """Whether ``module`` is missing; if so, say which extra of wulian brings it."""
    import importlib.util

    if importlib.util.find_spec(module) is not None:
        return False
    say_error(f"需要安装 {extra} 扩展:pip install 'wulian[{extra}]' / this needs the "
              f"`{extra}` extra: pip install 'wulian[{extra}]'")
    return True
