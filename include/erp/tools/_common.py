"""Helpers shared by the ERP tools: argument resolution, period checks and JSON-friendly numbers."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import TypeVar

from ..store import AS_OF, ErpData

MAX_ROWS = 20
_PERIOD_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")

T = TypeVar("T")


def cents(value: Decimal) -> Decimal:
    """Round a Decimal amount half-up to cents."""
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def money(value: Decimal | float) -> float:
    """A money amount rounded to cents, as a float for JSON."""
    return float(cents(Decimal(str(value))))


def pct(part: Decimal, whole: Decimal) -> float | None:
    """``part / whole`` in percent with one decimal, or None when ``whole`` is zero."""
    if whole == 0:
        return None
    return float((part * 100 / whole).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def as_of() -> str:
    return AS_OF.isoformat()


def check_period(period: str, available: Iterable[str], what: str) -> str:
    """Validate a ``YYYY-MM`` period against the periods that have data."""
    options = sorted(available)
    if not isinstance(period, str) or not _PERIOD_RE.match(period.strip()):
        raise ValueError(f"period must be a month in YYYY-MM format, e.g. '2026-10'; got {period!r}")
    period = period.strip()
    if period not in options:
        raise ValueError(
            f"no {what} data for period {period!r}; available periods: {', '.join(options) or 'none'}"
        )
    return period


def resolve(value: str, options: Mapping[str, str], what: str, valid: Iterable[str]) -> str:
    """Map ``value`` case-insensitively through ``options`` (alias -> canonical value).

    Raises ValueError naming the valid choices (``valid``) when nothing matches.
    """
    key = value.strip().casefold() if isinstance(value, str) else None
    for alias, canonical in options.items():
        if alias.casefold() == key:
            return canonical
    raise ValueError(f"unknown {what} {value!r}; valid {what}s: {', '.join(valid)}")


def limit(rows: list[T], max_rows: int = MAX_ROWS) -> tuple[list[T], bool]:
    """The first ``max_rows`` rows and whether rows were left out."""
    return rows[:max_rows], len(rows) > max_rows


def resolve_department(data: ErpData, value: str) -> str:
    """The canonical department name for a department name or cost center."""
    departments = data.departments
    options = {name: name for name in departments} | {cc: name for name, cc in departments.items()}
    valid = [f"{name} ({cc})" for name, cc in departments.items()]
    return resolve(value, options, "department", valid)


def resolve_cost_center(data: ErpData, value: str) -> str:
    """The canonical cost center for a cost center code or department name."""
    names = {cc: name for name, cc in data.departments.items()}
    for line in data.budget:
        names.setdefault(line.cost_center, line.cost_center)
    options = {cc: cc for cc in names} | {name: cc for cc, name in names.items()}
    valid = [f"{cc} ({name})" for cc, name in sorted(names.items())]
    return resolve(value, options, "cost center", valid)
