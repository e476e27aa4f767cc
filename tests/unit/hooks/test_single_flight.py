"""SingleFlight: one build for many concurrent callers, failures forgotten, one caller's cancel harmless."""

from __future__ import annotations

import asyncio

import pytest

from erp_agents.hooks.shared import SingleFlight


def test_concurrent_callers_share_one_build_until_it_expires() -> None:
    builds = []

    async def build():
        builds.append(1)
        await asyncio.sleep(0.01)
        return object()

    async def scenario():
        cache = SingleFlight(ttl_s=0.05)
        first = await asyncio.gather(*(cache.get("k", build) for _ in range(100)))
        assert len(builds) == 1 and len({id(v) for v in first}) == 1
        await asyncio.sleep(0.06)
        assert await cache.get("k", build) is not first[0]
        assert len(builds) == 2

    asyncio.run(scenario())


def test_a_failed_build_is_not_kept() -> None:
    calls = []

    async def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("supervisor busy")
        return "conn"

    async def scenario():
        cache = SingleFlight()
        with pytest.raises(ConnectionError):
            await cache.get("k", flaky)
        await asyncio.sleep(0)  # the done callback runs
        assert await cache.get("k", flaky) == "conn"

    asyncio.run(scenario())


def test_one_waiter_cancelled_does_not_cancel_the_build_of_the_others() -> None:
    async def slow():
        await asyncio.sleep(0.05)
        return 42

    async def scenario():
        cache = SingleFlight()
        impatient = asyncio.create_task(asyncio.wait_for(cache.get("k", slow), 0.01))
        patient = asyncio.create_task(cache.get("k", slow))
        with pytest.raises(TimeoutError):
            await impatient
        assert await patient == 42

    asyncio.run(scenario())


def test_least_recently_used_entries_leave_beyond_the_bound() -> None:
    async def value(v):
        return v

    async def scenario():
        cache = SingleFlight(max_entries=2)
        for key in ("a", "b", "a", "c"):
            await cache.get(key, lambda key=key: value(key))
        assert len(cache) == 2 and set(cache._entries) == {"a", "c"}

    asyncio.run(scenario())
