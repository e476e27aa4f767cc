from __future__ import annotations

from erp_agents.costs.record import CostRecord
from erp_agents.monitoring.outcome import AgentOutcome, decide_outcome


def _o(task_id: str, state: str, critical: bool = True, cost: float = 0.0) -> AgentOutcome:
    record = CostRecord("w", task_id, "M", "openai", "gpt-4o-mini", input_tokens=10, output_tokens=5, cost_usd=cost, calls=1)
    return AgentOutcome(task_id, task_id, critical, state, record)


def test_all_success_is_completed_with_totals():
    summary = decide_outcome("w", [_o("a", "success", cost=0.25), _o("b", "success", cost=0.5)], False, 1.0)
    assert summary["status"] == "completed"
    assert (summary["total_cost"], summary["total_tokens"], summary["total_calls"]) == (0.75, 30, 2)


def test_non_critical_failure_with_partial_allowed_is_partial():
    summary = decide_outcome("w", [_o("a", "success"), _o("b", "failed", critical=False)], True, None)
    assert summary["status"] == "partial"
    assert summary["reason"] == "non-critical agents did not succeed: b (failed)"
    assert summary["agents"] == {"total": 2, "succeeded": 1, "failed": 1}


def test_non_critical_failure_without_partial_fails():
    summary = decide_outcome("w", [_o("a", "success"), _o("b", "failed", critical=False)], False, None)
    assert summary["status"] == "failed" and summary["reason"] == "agents did not succeed: b (failed)"


def test_critical_failure_always_fails():
    summary = decide_outcome("w", [_o("a", "upstream_failed"), _o("b", "failed", critical=False)], True, None)
    assert summary["status"] == "failed"
    assert summary["reason"] == "critical agents did not succeed: a (upstream_failed)"
