"""Parameter checks, one rule in one place: a parameters object (``AllocationParams``) or a
solver's keyword calls these from its own constructor, so a value the solver would
misread (``decompose="Always"`` taken as "auto", a negative time limit taken as none) is
refused where it is given, with one message in Chinese and English ("中文 / English", as
the command line and the service say everything).

Each check raises ``ValueError`` naming ``where`` (the class or function) and the field.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

# HiGHS' and CP-SAT's random_seed: a non-negative 32-bit integer.
SEED_MAX = 2**31 - 1


def _refuse(where: str, name: str, zh: str, en: str, value: object) -> ValueError:
    return ValueError(f"{where}.{name} {zh},收到 {value!r} / "
                      f"{where}.{name} {en}, not {value!r}")


def check_choice(where: str, name: str, value: object, allowed: Sequence[str]) -> None:
    """``value`` is exactly one of ``allowed`` (case and spaces count: no guessing)."""
    if not isinstance(value, str) or value not in allowed:
        listed = ", ".join(f'"{a}"' for a in allowed)
        raise _refuse(where, name, f"只能是 {'、'.join(allowed)} 之一",
                      f"must be one of {listed}", value)


def check_seconds(where: str, name: str, value: object, *,
                  zero: tuple[str, str] | None = None) -> None:
    """A finite number of seconds, not negative. ``zero``: what 0 means, in Chinese and
    English, when 0 is allowed; without it the seconds must be more than 0."""
    seconds = math.nan
    if isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_):
        seconds = float(value)
    if not (math.isfinite(seconds) and (seconds > 0 or (zero is not None and seconds == 0))):
        if zero is not None:
            raise _refuse(where, name, f"须为不小于 0 的有限秒数(0 表示{zero[0]})",
                          f"must be a finite number of seconds, 0 or more (0: {zero[1]})", value)
        raise _refuse(where, name, "须为大于 0 的有限秒数",
                      "must be a finite number of seconds, more than 0", value)


def check_whole(where: str, name: str, value: object, *, minimum: int = 0,
                maximum: int | None = None) -> None:
    """A whole number (not a bool, not a float) in ``[minimum, maximum]``."""
    number: int | None = None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_):
        number = int(value)
    if number is None or number < minimum or (maximum is not None and number > maximum):
        if maximum is None:
            raise _refuse(where, name, f"须为不小于 {minimum} 的整数",
                          f"must be a whole number, {minimum} or more", value)
        raise _refuse(where, name, f"须为 {minimum} 到 {maximum} 之间的整数",
                      f"must be a whole number from {minimum} to {maximum}", value)


def check_seed(where: str, name: str, value: object) -> None:
    """A random seed the solvers accept (HiGHS refuses anything outside ``[0, 2³¹ − 1]``)."""
    check_whole(where, name, value, minimum=0, maximum=SEED_MAX)


def check_flag(where: str, name: str, value: object) -> None:
    """``True`` or ``False`` (not 0/1, not "yes")."""
    if not isinstance(value, bool | np.bool_):
        raise _refuse(where, name, "须为 True 或 False", "must be True or False", value)
