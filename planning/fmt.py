"""Numbers formatted for people: ¥12,340 · 83.4% · 12,345."""

from __future__ import annotations

import math


def yuan(value: float) -> str:
    """Money in yuan, whole yuan with thousands separators (cents only below ¥100).

    >>> yuan(12340.4), yuan(56.5), yuan(-1200)
    ('¥12,340', '¥56.50', '-¥1,200')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    sign = "-" if value < 0 else ""
    value = abs(value)
    return f"{sign}¥{value:,.2f}" if value < 100 and value != int(value) else f"{sign}¥{value:,.0f}"


def pct(value: float, digits: int = 1) -> str:
    """A share as a percentage.

    >>> pct(0.8342), pct(1.0), pct(float("nan"))
    ('83.4%', '100.0%', '—')
    """
    if value is None or math.isnan(value):
        return "—"
    return f"{value * 100:.{digits}f}%"


def count(value: float) -> str:
    """A count or quantity with thousands separators, decimals only when it has them: two, or
    below 1 as many as give three significant digits (up to six), so that a small value does
    not read as nothing and one just below 1 not as 1.

    >>> count(12345), count(2.5), count(0.003), count(0.996), count(1.004), count(-0.25)
    ('12,345', '2.5', '0.003', '0.996', '1', '-0.25')
    >>> count(-1e-9)
    '0'
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if float(value).is_integer():
        return f"{value:,.0f}"
    size = abs(value)
    decimals = 2 if size >= 1 else min(6, max(2, 2 - math.floor(math.log10(size))))
    text = f"{value:,.{decimals}f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text  # (a tiny negative rounds to nothing, unsigned)
