"""Money as integer micro-dollars: sums of floats drift, and a budget check must be exact."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal

MICROS_PER_USD = 1_000_000
_MICRO = Decimal("0.000001")


def usd_to_micros(usd: Decimal | str | int, *, round_up: bool = False) -> int:
    """Whole micro-dollars for ``usd``; ``round_up`` for worst cases, so a reservation never falls short.

    Floats are refused: their binary value is not the price anyone wrote down.
    """
    if isinstance(usd, float):
        raise TypeError("pass money as Decimal or str, not float")
    value = Decimal(usd) * MICROS_PER_USD
    return int(value.to_integral_value(rounding=ROUND_CEILING if round_up else ROUND_HALF_EVEN))


def micros_to_usd(micros: int) -> Decimal:
    """Exact USD for a micro-dollar amount (six decimals)."""
    return (Decimal(micros) / MICROS_PER_USD).quantize(_MICRO)


def budget_micros(usd: float | Decimal | str) -> int:
    """A budget from a spec (where it is a float such as 0.5) through its decimal text, rounded down."""
    value = Decimal(str(usd)) * MICROS_PER_USD
    return int(value.to_integral_value(rounding="ROUND_FLOOR"))


def format_usd(micros: int) -> str:
    return f"${micros_to_usd(micros)}"
