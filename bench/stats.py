"""Median and spread of repeated measurements."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any


def summary(values: Sequence[float], *, digits: int = 3) -> dict[str, Any]:
    """Median, min, max and (with four or more samples) the interquartile range, plus every sample."""
    data = sorted(float(v) for v in values)
    if not data:
        return {"n": 0}
    result: dict[str, Any] = {
        "n": len(data),
        "median": round(statistics.median(data), digits),
        "min": round(data[0], digits),
        "max": round(data[-1], digits),
        "samples": [round(v, digits) for v in values],
    }
    if len(data) >= 4:
        q1, _, q3 = statistics.quantiles(data, n=4, method="inclusive")
        result["iqr"] = [round(q1, digits), round(q3, digits)]
    return result


def spread(stat: dict[str, Any], unit: str = "", digits: int = 2) -> str:
    """`median (min–max)` for the tables."""
    if not stat or not stat.get("n"):
        return "—"
    fmt = f"{{:.{digits}f}}"
    med = fmt.format(stat["median"])
    if stat["n"] == 1:
        return f"{med}{unit} (n=1)"
    return f"{med}{unit} ({fmt.format(stat['min'])}–{fmt.format(stat['max'])}, n={stat['n']})"
