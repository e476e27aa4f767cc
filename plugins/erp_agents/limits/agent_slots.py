"""A workflow's ``max_parallel_agents``: at most that many of one run's agents at work at once.

Airflow's ``max_active_tasks`` does not hold agents back: the scheduler defers a start-from-trigger
task straight from ``DagRun.schedule_tis`` without the concurrency checks of the queueing path, and
deferred tasks are left out of the DAG's active-task count (Airflow 3.3). So the cap is kept here,
as one concurrency tier of the rate limiter scoped to the DAG run: an agent takes a slot before its
first call and gives it back when it ends, whatever the outcome. Waiting agents are served by
priority, then arrival, across triggerers; a waiting agent holds no worker slot and no process; a
triggerer that dies frees its slots when their leases lapse; a store that cannot be reached fails
closed (nobody starts). A fan-out chunk is one agent task, so it takes one slot for all its items.

The wait is not part of the agent's own timeout, as time queued for a slot is not part of a task's
``execution_timeout`` in Airflow: the agent's clock starts once it holds its slot. The workflow's
timeout does count, so the wait ends there.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from erp_agents.exceptions import AgentTimeoutError
from erp_agents.limits.tiers import Tier

if TYPE_CHECKING:
    from erp_agents.contracts import AgentInvocation, RunContext
    from erp_agents.spec.models import Agent

TIER_NAME = "agents"
WAIT_WORTH_LOGGING_S = 1.0
MAX_READABLE_SCOPE = 200


def agent_tasks_per_run(agents: Iterable[Agent]) -> int:
    """The most agent tasks one run can have at once: one per agent, and one per chunk of the most
    items a fan-out agent accepts."""
    return sum(math.ceil(a.max_items / a.chunk_size) if a.for_each is not None else 1 for a in agents)


def cap_to_enforce(agents: Iterable[Agent], max_parallel_agents: int) -> int | None:
    """The cap, or None when the run can never have more agents than it (then nothing is held)."""
    return max_parallel_agents if agent_tasks_per_run(agents) > max_parallel_agents else None


def slot_tier(run: RunContext, cap: int) -> Tier:
    """The run's agent slots: a concurrency tier of the rate limiter, keyed by DAG id and run id (a
    digest of them when they are long: a DAG id and a run id may take 500 characters, the SQL store's
    keys 400)."""
    scope = f"run:{run.dag_id}/{run.run_id}"
    if len(scope) > MAX_READABLE_SCOPE:
        scope = "run:" + hashlib.sha256(scope.encode()).hexdigest()
    return Tier(scope=scope, kind="concurrency", limit=cap, window_s=None, name=TIER_NAME)


def _wait_deadline(invocation: AgentInvocation, run: RunContext) -> float | None:
    """When waiting must end (``time.monotonic``): the workflow's timeout, if it has one."""
    left = run.seconds_left(invocation.workflow_timeout_s)
    return None if left is None else time.monotonic() + max(left, 0.0)


@asynccontextmanager
async def agent_slot(invocation: AgentInvocation, run: RunContext, *, log: logging.Logger | Any) -> AsyncIterator[None]:
    """Hold one of the run's agent slots for the body; no-op when the workflow's cap cannot bind."""
    cap = invocation.max_parallel_agents
    if cap is None:
        yield
        return
    from erp_agents.limits.limiter import limiter_for

    limiter = limiter_for(invocation.limiter)
    holder = f"{run.task_id or invocation.task_id}:{run.map_index}"
    try:
        lease = await limiter.acquire((slot_tier(run, cap),), tokens=0, priority=invocation.agent.priority,
                                      holder=holder, deadline=_wait_deadline(invocation, run))
    except TimeoutError as exc:
        raise AgentTimeoutError(
            f"agent {invocation.agent.name} waited for one of the workflow's {cap} agent slots "
            f"(max_parallel_agents) until the workflow timeout of {invocation.workflow_timeout_s:g} s: {exc}"
        ) from None
    if lease.wait_s >= WAIT_WORTH_LOGGING_S:
        log.info("Agent %s waited %.1f s for one of the workflow's %d agent slots (max_parallel_agents)",
                 invocation.agent.name, lease.wait_s, cap)
    try:
        yield
    finally:
        await limiter.settle(lease, 0)  # frees the slot; shielded inside, so a cancelled agent frees it too
