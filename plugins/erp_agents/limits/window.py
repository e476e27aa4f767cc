"""Exact sliding-window math shared by every backend; pure functions over plain numbers.

A tier keeps a log of (time, amount) entries. An entry counts until ``t + window + margin``; the
margin covers the delay between our admission and the provider's arrival timestamp, so a window on
the provider's clock never holds more than we admitted in a window of ours. A request fits when the
live total plus its amount is at most the limit: since new entries only arrive at "now", every
window that contains the new entry holds at most what our window holds now.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from erp_agents.limits.tiers import Tier

DEFAULT_MARGIN_S = 2.0  # 1 s let 29 of 600 bursty requests reach a busy server past their window


def cutoff(now: float, window_s: float, margin_s: float) -> float:
    """Entries at or before this time have left the window."""
    return now - window_s - margin_s


def fits(total: int, amount: int, limit: int) -> bool:
    return total + amount <= limit


def seconds_until_fits(entries: Iterable[tuple[float, int]], total: int, amount: int, limit: int,
                       window_s: float, margin_s: float, now: float) -> float | None:
    """Time until enough of the oldest entries leave the window; None when they never free enough."""
    excess = total + amount - limit
    if excess <= 0:
        return 0.0
    freed = 0
    for t, n in entries:  # oldest first
        freed += n
        if freed >= excess:
            return max(t + window_s + margin_s - now, 0.0)
    return None


@dataclass(frozen=True)
class Attempt:
    """One try at acquiring: admitted, or not with a hint of when to try again (None: poll)."""

    admitted: bool
    retry_after_s: float | None = None
    blocked_by: str | None = None  # tier key, "waiter" (someone ahead in line) or None
    now: float = 0.0


def never_fits(tiers: Sequence[Tier], tokens: int) -> Tier | None:
    """The first token tier a request of ``tokens`` exceeds on its own, if any."""
    for tier in tiers:
        if tier.kind == "tokens" and tokens > tier.limit:
            return tier
    return None


def rank(priority: int, arrival: float, waiter_id: str) -> tuple[int, float, str]:
    """Serving order: higher priority first, then earlier arrival, then id (a total order)."""
    return (-priority, arrival, waiter_id)
