"""A run's agent slots in every limiter store, across two limiters (two triggerers), long ids included."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from erp_agents.contracts import RunContext
from erp_agents.limits.agent_slots import slot_tier
from erp_agents.limits.limiter import RateLimiter
from tests.integration.limits.conftest import make_backend

LONGEST = RunContext(dag_id="d" * 200, run_id="r" * 250)  # Airflow allows 250 for each


@pytest.mark.parametrize("run", [RunContext(dag_id="wf", run_id="manual__2026-12-05T04:40:05+00:00"), LONGEST])
def test_two_limiters_share_a_runs_slots(store_kind, store_url, run):
    namespace = f"t{uuid.uuid4().hex[:10]}"
    here, there = (RateLimiter(make_backend(store_kind, store_url, namespace), poll_s=0.01) for _ in range(2))
    tier = slot_tier(run, 2)

    async def main() -> None:
        deadline = time.monotonic() + 10  # a store that refused the key would keep them waiting
        first = await here.acquire([tier], tokens=0, priority=5, holder="a", deadline=deadline)
        second = await there.acquire([tier], tokens=0, priority=5, holder="b", deadline=deadline)
        third = asyncio.create_task(here.acquire([tier], tokens=0, priority=5, holder="c"))
        await asyncio.sleep(0.3)
        assert not third.done()  # the cap is 2, whichever limiter asks
        # another run of the same DAG has slots of its own
        other = slot_tier(run.model_copy(update={"run_id": run.run_id[:-1] + "x"}), 2)
        assert other.key != tier.key
        await asyncio.wait_for(there.acquire([other], tokens=0, priority=5, holder="d"), 5)
        await there.settle(second, 0)
        await here.settle(await asyncio.wait_for(third, 5), 0)
        await here.settle(first, 0)

    try:
        asyncio.run(main())
    finally:
        here.backend.close()
        there.backend.close()
