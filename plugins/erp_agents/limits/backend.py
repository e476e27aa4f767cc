"""What a limiter store does; SQL and Redis implement it. Calls are synchronous: the limiter runs
them in a thread so the event loop never blocks on the store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from erp_agents.limits.tiers import Tier
from erp_agents.limits.window import Attempt


@dataclass(frozen=True)
class Waiter:
    """One pending acquisition; the lease id becomes the id of what it holds once admitted."""

    id: str
    tiers: tuple[Tier, ...]
    tokens: int
    priority: int
    holder: str
    arrival: float  # time.time() when it started waiting, in whole milliseconds (Redis ranks by ms)

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(t.scope for t in self.tiers)


class LimiterBackend(Protocol):
    margin_s: float

    def try_acquire(self, waiter: Waiter, *, lease_s: float, waiter_ttl_s: float) -> Attempt:
        """All tiers or none, in one atomic step; on failure the waiter stays queued for ``waiter_ttl_s``."""

    def try_acquire_many(self, waiters: Sequence[Waiter], *, lease_s: float,
                         waiter_ttl_s: float) -> list[Attempt]:
        """Waiters in serving order in one atomic step; one behind a refused waiter of a shared scope is
        "skipped" (not tried, so nobody overtakes the refused one)."""

    def register(self, waiters: Sequence[Waiter], *, waiter_ttl_s: float) -> None:
        """Queue (or keep queued) waiters so other processes serve them in priority order."""

    def withdraw(self, waiter_ids: Sequence[str], scopes: Sequence[str]) -> None:
        """Remove waiters that gave up."""

    def settle(self, lease_id: str, tiers: Sequence[Tier], reserved: int, used: int) -> None:
        """Token tiers count ``used`` instead of ``reserved``; concurrency slots are freed."""

    def settle_many(self, settles: Sequence[tuple[str, Sequence[Tier], int, int]]) -> None:
        """``settle`` for many ``(lease_id, tiers, reserved, used)``, all or nothing."""

    def release(self, lease_id: str, tiers: Sequence[Tier], *, keep_counts: bool) -> None:
        """Free the slots; without ``keep_counts`` the request and its tokens are refunded."""

    def renew(self, lease_ids: Sequence[str], tiers: Sequence[Tier], *, lease_s: float) -> None:
        """Extend the concurrency leases of live requests."""

    def hold(self, tier: Tier, *, used_by_server: int, reset_s: float) -> None:
        """The provider counts ``used_by_server`` in this tier: count at least that until ``reset_s``."""

    def usage(self, tiers: Sequence[Tier]) -> dict[str, int]:
        """Live usage per tier key (window total or slots held)."""

    def close(self) -> None: ...
