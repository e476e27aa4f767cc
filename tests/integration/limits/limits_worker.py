"""Code run in child processes by the multi-process limiter tests."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from erp_agents.limits.limiter import RateLimiter
from erp_agents.limits.tiers import Tier


def _backend(kind: str, url: str, namespace: str, margin_s: float) -> Any:
    if kind == "redis":
        from erp_agents.limits.redis_backend import RedisBackend

        return RedisBackend(url, namespace=namespace, margin_s=margin_s)
    from erp_agents.limits.sql_backend import SqlBackend, make_engine

    make_engine(url).dispose(close=False)  # a forked child must not share the parent's pooled connections
    return SqlBackend(url, namespace=namespace, margin_s=margin_s)


def hammer(kind: str, url: str, namespace: str, margin_s: float, tiers: tuple[Tier, ...], tasks: int,
           seconds: float, seed: int, in_flight: Any, peak: Any) -> int:
    """Many coroutines acquire, hold briefly and settle until ``seconds`` pass; returns admissions."""
    limiter = RateLimiter(_backend(kind, url, namespace, margin_s), lease_s=10.0, poll_s=0.02)
    rng = random.Random(seed)
    end = time.monotonic() + seconds

    async def one() -> int:
        done = 0
        while time.monotonic() < end:
            tokens = rng.randint(50, 400)
            try:
                lease = await limiter.acquire(tiers, tokens=tokens, priority=rng.randint(1, 9), holder="w",
                                              deadline=end)
            except TimeoutError:
                break
            with in_flight.get_lock():
                in_flight.value += 1
                peak.value = max(peak.value, in_flight.value)
            await asyncio.sleep(rng.uniform(0.0, 0.05))
            with in_flight.get_lock():
                in_flight.value -= 1
            await limiter.settle(lease, rng.randint(1, tokens))
            done += 1
        return done

    async def main() -> int:
        return sum(await asyncio.gather(*(one() for _ in range(tasks))))

    return asyncio.run(main())


def queue_up(kind: str, url: str, namespace: str, tiers: tuple[Tier, ...], priority: int, count: int,
             hold_s: float) -> list[tuple[float, int]]:
    """``count`` waiters of one priority; returns (store time admitted, priority) for each."""
    limiter = RateLimiter(_backend(kind, url, namespace, 1.0), lease_s=10.0, poll_s=0.02)

    async def one() -> tuple[float, int]:
        lease = await limiter.acquire(tiers, tokens=0, priority=priority, holder="q",
                                      deadline=time.monotonic() + 30)
        await asyncio.sleep(hold_s)
        await limiter.settle(lease, 0)
        return lease.acquired_at, priority

    async def main() -> list[tuple[float, int]]:
        return list(await asyncio.gather(*(one() for _ in range(count))))

    return asyncio.run(main())


def hammer_into(out: Any, index: int, *args: Any) -> None:
    """``hammer`` in a child process; its admission count goes to ``out[index]``."""
    out[index] = hammer(*args)
