"""RateLimiter on a SQLite store: waiting order, deadlines, refunds, cancellation, failing closed."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from erp_agents.limits import RateLimiter, RateLimitNeverFitsError, Tier
from erp_agents.limits.limiter import limiter_for
from erp_agents.limits.redis_backend import RedisBackend
from erp_agents.limits.sql_backend import SqlBackend

SLOT = Tier("provider:p", "concurrency", 1, None, "concurrent")
TPM = Tier("provider:p", "tokens", 1000, 60.0, "tpm")


@pytest.fixture
def limiter(tmp_path: Path) -> RateLimiter:
    return RateLimiter(SqlBackend(f"sqlite:///{tmp_path / 'l.db'}"), poll_s=0.01)


def test_waiters_in_one_process_are_served_by_priority_then_arrival(limiter: RateLimiter) -> None:
    async def main() -> list[str]:
        order: list[str] = []
        first = await limiter.acquire([SLOT], tokens=0, priority=5, holder="first")

        async def one(name: str, priority: int) -> None:
            lease = await limiter.acquire([SLOT], tokens=0, priority=priority, holder=name)
            order.append(name)
            await limiter.settle(lease, 0)

        tasks = []
        for name, priority in [("low", 1), ("mid-a", 5), ("high", 9), ("mid-b", 5)]:
            tasks.append(asyncio.create_task(one(name, priority)))
            await asyncio.sleep(0.02)
        await limiter.settle(first, 0)
        await asyncio.gather(*tasks)
        return order

    assert asyncio.run(main()) == ["high", "mid-a", "mid-b", "low"]


def test_wait_is_asynchronous_and_recorded(limiter: RateLimiter) -> None:
    async def main() -> tuple[float, int]:
        held = await limiter.acquire([SLOT], tokens=0, priority=5, holder="a")
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        tick_task = asyncio.create_task(ticker())
        waiting = asyncio.create_task(limiter.acquire([SLOT], tokens=0, priority=5, holder="b"))
        await asyncio.sleep(0.3)
        await limiter.settle(held, 0)
        lease = await waiting
        tick_task.cancel()
        await limiter.settle(lease, 0)
        return lease.wait_s, ticks

    wait_s, ticks = asyncio.run(main())
    assert wait_s >= 0.3
    assert ticks >= 15  # the loop kept running while the request waited


def test_deadline_raises_timeout_and_leaves_no_trace(limiter: RateLimiter) -> None:
    async def main() -> None:
        held = await limiter.acquire([SLOT], tokens=0, priority=5, holder="a")
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await limiter.acquire([SLOT], tokens=0, priority=9, holder="b", deadline=time.monotonic() + 0.2)
        # raised at its deadline, not when the held slot frees (never): the bound leaves room for a loaded CI host
        assert 0.15 <= time.monotonic() - started < 5.0
        await limiter.settle(held, 0)
        lease = await limiter.acquire([SLOT], tokens=0, priority=1, holder="c", deadline=time.monotonic() + 1)
        await limiter.settle(lease, 0)

    asyncio.run(main())


def test_a_request_larger_than_a_token_tier_fails_at_once(limiter: RateLimiter) -> None:
    with pytest.raises(RateLimitNeverFitsError, match="1001 tokens.*can never run.*1000 tokens per tpm"):
        asyncio.run(limiter.acquire([TPM], tokens=1001, priority=5, holder="a"))


def test_settle_refunds_and_wakes_the_next_waiter(limiter: RateLimiter) -> None:
    async def main() -> dict[str, dict[str, int]]:
        big = await limiter.acquire([TPM], tokens=900, priority=5, holder="a")
        waiting = asyncio.create_task(limiter.acquire([TPM], tokens=500, priority=5, holder="b"))
        await asyncio.sleep(0.1)
        assert not waiting.done()
        await limiter.settle(big, 200)
        second = await asyncio.wait_for(waiting, 2)
        return await limiter.headroom([TPM]) | {"wait": {"s": int(second.wait_s * 1000)}}

    result = asyncio.run(main())
    assert result[TPM.key] == {"limit": 1000, "used": 700, "remaining": 300}


def test_cancelled_waiter_leaves_the_queue(limiter: RateLimiter) -> None:
    async def main() -> None:
        held = await limiter.acquire([SLOT], tokens=0, priority=5, holder="a")
        ahead = asyncio.create_task(limiter.acquire([SLOT], tokens=0, priority=99, holder="b"))
        await asyncio.sleep(0.1)
        ahead.cancel()
        await asyncio.sleep(0.05)
        await limiter.settle(held, 0)
        lease = await limiter.acquire([SLOT], tokens=0, priority=1, holder="c", deadline=time.monotonic() + 2)
        await limiter.settle(lease, 0)

    asyncio.run(main())


def test_unreachable_store_fails_closed(caplog: pytest.LogCaptureFixture) -> None:
    dead = RateLimiter(RedisBackend("redis://127.0.0.1:1/0"), poll_s=0.01)
    caplog.set_level(logging.ERROR, logger="erp_agents.limits.limiter")
    with pytest.raises(TimeoutError, match="store is unreachable"):
        asyncio.run(dead.acquire([SLOT], tokens=0, priority=5, holder="a", deadline=time.monotonic() + 0.5))
    assert any("failing closed" in r.getMessage() for r in caplog.records)


def test_limiter_for_is_one_per_config(tmp_path: Path) -> None:
    class Cfg:
        backend = "sql"
        url = f"sqlite:///{tmp_path / 'x.db'}"
        namespace = "n"
        lease_seconds = 30.0

    assert limiter_for(Cfg()) is limiter_for(Cfg())
    assert limiter_for(Cfg()).lease_s == 30.0
