"""An agent's time: its own timeout, or less when the workflow's timeout (counted from the run's start) is nearer."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from erp_agents.contracts import AgentInvocation, Budgets, RunContext
from erp_agents.costs.record import CostRecord
from erp_agents.monitoring.outcome import AgentOutcome, decide_outcome
from erp_agents.spec.models import Agent, LLMConfig, ProviderConfig
from erp_agents.triggers.runner import _time_left


def _invocation(workflow_timeout: float | None) -> AgentInvocation:
    agent = Agent(name="a", llm_config=LLMConfig(model="gpt-4o-mini"), prompt_template="x", timeout=300)
    return AgentInvocation(workflow="w", task_id="custom.a", agent=agent, provider_name="openai",
                           provider=ProviderConfig(), budgets=Budgets(module="Custom"),
                           workflow_timeout_s=workflow_timeout)


def _run(started_ago_s: float) -> RunContext:
    started = datetime.now(timezone.utc) - timedelta(seconds=started_ago_s)
    return RunContext(dag_id="w", run_id="r", run_started_at=started.isoformat())


def test_the_agents_own_timeout_when_the_run_has_time_enough():
    seconds, why = _time_left(_invocation(3600), _run(10))
    assert seconds == 300 and why == "its timeout of 300 s"


def test_the_workflow_timeout_when_it_is_nearer():
    seconds, why = _time_left(_invocation(1000), _run(900))
    assert 95 < seconds <= 100 and why == "the workflow timeout of 1000 s"
    seconds, _ = _time_left(_invocation(1000), _run(5000))
    assert 0 < seconds < 0.01  # already past: the agent ends at once, with the reason


def test_a_timeout_ends_the_run_as_failed_and_says_so():
    record = CostRecord(workflow="w", agent="a", module="Custom", provider="openai", model="m",
                        status="failed", error_type="AgentTimeoutError", error="reached the workflow timeout")
    summary = decide_outcome("w", [AgentOutcome(task_id="custom.a", name="a", critical=True, state="failed",
                                                record=record)], False, None, "r")
    assert summary.status == "failed" and summary.ended_by == "timeout"
    assert summary.reason.startswith("the timeout ended the run")
