"""max_parallel_agents: at most that many of a run's agents at work at once, held in the trigger."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from pydantic_ai.messages import ModelResponse, TextPart
from pydantic_ai.models.function import FunctionModel

from erp_agents.contracts import RunContext, load_event
from erp_agents.factory.plan import TASK_TIMEOUT_GRACE_S, plan_workflow
from erp_agents.hooks import providers
from erp_agents.limits.agent_slots import agent_tasks_per_run, cap_to_enforce, slot_tier
from erp_agents.limits.limiter import limiter_for
from erp_agents.spec.models import (
    Agent,
    CostConfig,
    EngineConfig,
    ForEach,
    LimiterConfig,
    LLMConfig,
    ModelPrice,
    ProviderConfig,
    Workflow,
)
from erp_agents.triggers.agent import AgentTrigger

LLM = LLMConfig(model="scripted-1")


def _agents(n: int, **extra: object) -> list[Agent]:
    return [Agent(name=f"a{i}", module="HR", llm_config=LLM, prompt_template=f"agent {i}", timeout=2, **extra)
            for i in range(n)]


def _engine(tmp_path: Path) -> EngineConfig:
    return EngineConfig(
        default_provider="scripted",
        providers={"scripted": ProviderConfig(type="custom", factory="scripted", conn_id="scripted_default")},
        cost_config=CostConfig(model_costs={"scripted-1": ModelPrice(input=0.001, output=0.002)}),
        limiter=LimiterConfig(url=f"sqlite:///{tmp_path / 'slots.db'}"),
    )


def test_the_cap_is_held_only_when_a_run_can_have_more_agents_than_it():
    assert cap_to_enforce(_agents(10), 10) is None
    assert cap_to_enforce(_agents(11), 10) == 10
    fan_out = Agent(name="f", llm_config=LLM, prompt_template="{{ item }}", for_each=ForEach(tool="hr.list"),
                    chunk_size=50, max_items=2000)
    assert agent_tasks_per_run([fan_out]) == 40  # one task per chunk of the most items it accepts
    assert cap_to_enforce([fan_out], 10) == 10
    assert cap_to_enforce([fan_out], 40) is None


def test_a_capped_plan_hands_the_cap_to_every_agent_and_leaves_the_wait_out_of_its_timeout(tmp_path):
    capped = plan_workflow(Workflow(name="wf", agents=_agents(5), max_parallel_agents=2, timeout=600),
                           _engine(tmp_path))
    assert {t.invocation.max_parallel_agents for t in capped.tasks} == {2}
    assert {t.execution_timeout_s for t in capped.tasks} == {600 + TASK_TIMEOUT_GRACE_S}
    assert capped.max_active_tasks == 2
    no_timeout = plan_workflow(Workflow(name="wf", agents=_agents(5), max_parallel_agents=2, timeout=None),
                               _engine(tmp_path))
    assert {t.execution_timeout_s for t in no_timeout.tasks} == {None}
    free = plan_workflow(Workflow(name="wf", agents=_agents(2), max_parallel_agents=2), _engine(tmp_path))
    assert {t.invocation.max_parallel_agents for t in free.tasks} == {None}
    assert {t.execution_timeout_s for t in free.tasks} == {2 + TASK_TIMEOUT_GRACE_S}


class Busy:
    """A scripted model that counts the agents answering at once; ``fail`` names prompts that fail."""

    def __init__(self, seconds: float, fail: tuple[str, ...] = ()) -> None:
        self.seconds, self.fail = seconds, fail
        self.now = self.most = 0
        self.started: list[str] = []

    def factory(self, *, model, connection, options):
        async def answer(messages, info):
            prompt = messages[0].parts[-1].content
            self.started.append(prompt)
            self.now += 1
            self.most = max(self.most, self.now)
            try:
                await asyncio.sleep(self.seconds)
                if prompt in self.fail:
                    raise ValueError("the scripted model refuses")
            finally:
                self.now -= 1
            return ModelResponse(parts=[TextPart(f"done: {prompt}")])

        return FunctionModel(answer, model_name=model)


@pytest.fixture
def busy(monkeypatch):
    def install(model: Busy) -> Busy:
        monkeypatch.setattr(providers, "registered_providers", lambda: {"scripted": model.factory})
        return model

    monkeypatch.setenv("AIRFLOW_CONN_SCRIPTED_DEFAULT", json.dumps({"conn_type": "generic"}))
    return install


def _triggers(tmp_path: Path, n: int, cap: int, timeout: float | None = 600) -> list[AgentTrigger]:
    plan = plan_workflow(Workflow(name="wf", agents=_agents(n), max_parallel_agents=cap, timeout=timeout),
                         _engine(tmp_path))
    started = datetime.now(timezone.utc).isoformat()
    return [AgentTrigger(invocation=t.invocation.to_json(), end_in_triggerer=False, upstream_outputs={},
                         run={"schema_version": 1, "dag_id": "wf", "run_id": "r1", "task_id": t.task_id,
                              "params": {}, "run_started_at": started})
            for t in plan.tasks]


def _run_all(triggers: list[AgentTrigger]) -> list[dict]:
    async def one(trigger: AgentTrigger) -> dict:
        return [event async for event in trigger.run()][0].payload

    async def main() -> list[dict]:
        return await asyncio.gather(*(one(t) for t in triggers))

    return asyncio.run(main())


def test_no_more_agents_of_a_run_work_at_once_than_its_cap(tmp_path, busy):
    model = busy(Busy(0.3))
    payloads = _run_all(_triggers(tmp_path, 6, cap=2))
    assert [p["status"] for p in payloads] == ["success"] * 6
    assert model.most == 2 and len(model.started) == 6


def test_a_failed_agent_gives_its_slot_back(tmp_path, busy):
    model = busy(Busy(0.2, fail=("agent 0", "agent 1")))
    started = time.monotonic()
    payloads = _run_all(_triggers(tmp_path, 4, cap=1))
    assert time.monotonic() - started < 30  # handed back at once, not when its lease lapses (60 s)
    assert sorted(p["status"] for p in payloads) == ["error", "error", "success", "success"]
    assert model.most == 1 and len(model.started) == 4


def test_a_cancelled_agent_gives_its_slot_back(tmp_path, busy):
    model = busy(Busy(30))
    first, second = _triggers(tmp_path, 2, cap=1)

    async def main() -> float:
        holding = asyncio.ensure_future(first.run().__anext__())
        while not model.started:
            await asyncio.sleep(0.02)
        waiting = asyncio.ensure_future(second.run().__anext__())
        await asyncio.sleep(0.3)
        assert model.started == ["agent 0"]  # the second waits for the slot
        cancelled_at = time.monotonic()
        holding.cancel()
        with pytest.raises(asyncio.CancelledError):
            await holding
        while len(model.started) < 2:
            await asyncio.sleep(0.02)
        waiting.cancel()
        return time.monotonic() - cancelled_at

    assert asyncio.run(main()) < 5  # freed at once, not when a lease lapses (60 s)


def test_an_agent_that_never_gets_a_slot_ends_at_the_workflow_timeout_saying_why(tmp_path, busy):
    model = busy(Busy(0.1))
    trigger = _triggers(tmp_path, 2, cap=1, timeout=1.0)[0]
    limiter = limiter_for(_engine(tmp_path).limiter)

    async def main() -> dict:
        # Another agent of the same run (in another triggerer, say) holds the only slot throughout.
        held = await limiter.acquire([slot_tier(RunContext(dag_id="wf", run_id="r1"), 1)], tokens=0, priority=1,
                                     holder="elsewhere")
        try:
            return [event async for event in trigger.run()][0].payload
        finally:
            await limiter.settle(held, 0)

    failed = load_event(asyncio.run(main()))
    assert failed.error_type == "AgentTimeoutError" and model.started == []
    assert "waited for one of the workflow's 1 agent slots (max_parallel_agents)" in failed.message
