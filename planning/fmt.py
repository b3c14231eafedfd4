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
    """A count or quantity with thousands separators, decimals only when it has them.

    >>> count(12345), count(2.5)
    ('12,345', '2.5')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}".rstrip("0")
