"""Limiter store on Redis: one atomic Lua script per step, the server's clock, namespaced keys.

The script (``redis_limiter.lua``) holds the whole decision: expire old entries, check the queue of
waiters, check every tier, then write all or nothing. Studied first: the sliding-window scripts of
``limits`` and pyrate-limiter, which check one limit per call and never refund.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import Any

import redis

from erp_agents.limits.backend import Waiter
from erp_agents.limits.tiers import Tier
from erp_agents.limits.window import DEFAULT_MARGIN_S, Attempt

_SCRIPT = resources.files("erp_agents.limits").joinpath("redis_limiter.lua").read_text(encoding="utf-8")


def rank_score(priority: int, arrival: float) -> float:
    """Queue score: lower is served first; exact in a double for priorities -50..199."""
    return (200 - min(max(priority, -50), 199)) * 1e13 + round(arrival * 1000)


class RedisBackend:
    """Limiter store in one Redis server (not a cluster: keys are built inside the script)."""

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, namespace: str = "erp_agents",
                 margin_s: float = DEFAULT_MARGIN_S, now: Any = None) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5,
                                           max_connections=64)
        self.namespace = namespace
        self.margin_s = margin_s
        self._now = now  # a clock for tests; None uses the server's TIME
        self._script = self.client.register_script(_SCRIPT)

    def _key(self, tier: Tier) -> str:
        return f"{self.namespace}:{tier.key}"

    def _tier_args(self, tiers: Sequence[Tier]) -> list[Any]:
        out: list[Any] = [len(tiers)]
        for t in tiers:
            out += [self._key(t), t.kind, t.limit, t.window_s or 0]
        return out

    def _run(self, op: str, *args: Any) -> Any:
        now = "" if self._now is None else repr(float(self._now()))
        return self._script(args=[op, self.namespace, now, self.margin_s, *args])

    def try_acquire(self, waiter: Waiter, *, lease_s: float, waiter_ttl_s: float) -> Attempt:
        return self.try_acquire_many([waiter], lease_s=lease_s, waiter_ttl_s=waiter_ttl_s)[0]

    def try_acquire_many(self, waiters: Sequence[Waiter], *, lease_s: float,
                         waiter_ttl_s: float) -> list[Attempt]:
        """Waiters in serving order, in one script call; one behind a blocked waiter of its scope is skipped."""
        args: list[Any] = [lease_s, waiter_ttl_s, len(waiters)]
        for w in waiters:
            scopes = sorted(w.scopes)
            args += [w.id, rank_score(w.priority, w.arrival), w.tokens, len(scopes), *scopes,
                     *self._tier_args(w.tiers)]
        res = self._run("acquire", *args)
        now = float(res[-1])
        prefix = self.namespace + ":"
        out = []
        for k in range(len(waiters)):
            admitted, hint, blocked = int(res[3 * k]), float(res[3 * k + 1]), res[3 * k + 2]
            if admitted:
                out.append(Attempt(True, 0.0, None, now))
                continue
            key = blocked.decode() if isinstance(blocked, bytes) else str(blocked)
            out.append(Attempt(False, None if hint < 0 else hint, key.removeprefix(prefix), now))
        return out

    def register(self, waiters: Sequence[Waiter], *, waiter_ttl_s: float) -> None:
        args: list[Any] = [waiter_ttl_s]
        for w in waiters:
            scopes = sorted(w.scopes)
            args += [w.id, rank_score(w.priority, w.arrival), len(scopes), *scopes]
        if waiters:
            self._run("register", *args)

    def withdraw(self, waiter_ids: Sequence[str], scopes: Sequence[str]) -> None:
        if waiter_ids:
            self._run("withdraw", len(waiter_ids), *waiter_ids, *sorted(set(scopes)))

    def settle(self, lease_id: str, tiers: Sequence[Tier], reserved: int, used: int) -> None:
        self._run("adjust", lease_id, "settle", max(used, 0), *self._tier_args(tiers))

    def settle_many(self, settles: Sequence[tuple[str, Sequence[Tier], int, int]]) -> None:
        """Each settle is one atomic script on the server already; a batch is just their sequence."""
        for lease_id, tiers, reserved, used in settles:
            self.settle(lease_id, tiers, reserved, used)

    def release(self, lease_id: str, tiers: Sequence[Tier], *, keep_counts: bool) -> None:
        self._run("adjust", lease_id, "keep" if keep_counts else "refund", 0, *self._tier_args(tiers))

    def renew(self, lease_ids: Sequence[str], tiers: Sequence[Tier], *, lease_s: float) -> None:
        keys = sorted({self._key(t) for t in tiers if t.kind == "concurrency"})
        if keys and lease_ids:
            self._run("renew", lease_s, len(keys), *keys, *lease_ids)

    def hold(self, tier: Tier, *, used_by_server: int, reset_s: float) -> None:
        if tier.window_s is not None:
            self._run("hold", *self._tier_args([tier])[1:], used_by_server, reset_s)

    def usage(self, tiers: Sequence[Tier]) -> dict[str, int]:
        values = self._run("usage", *self._tier_args(tiers))
        return {t.key: int(v) for t, v in zip(tiers, values)}

    def close(self) -> None:
        self.client.close()
