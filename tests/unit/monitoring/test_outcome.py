from __future__ import annotations

import json

import pytest

from erp_agents.contracts import AgentCounts, RunSummary
from erp_agents.costs.record import CostRecord
from erp_agents.exceptions import ContractVersionError
from erp_agents.monitoring.outcome import AgentOutcome, decide_outcome
from erp_agents.monitoring.report import format_report
from erp_agents.xcom import run_summary_from_xcom


def _o(task_id: str, state: str, critical: bool = True, cost: float = 0.0) -> AgentOutcome:
    record = CostRecord(workflow="w", agent=task_id, module="M", provider="openai", model="gpt-4o-mini",
                        input_tokens=10, output_tokens=5, cost_usd=cost, calls=1)
    return AgentOutcome(task_id, task_id, critical, state, record)


def test_all_success_is_completed_with_totals():
    summary = decide_outcome("w", [_o("a", "success", cost=0.25), _o("b", "success", cost=0.5)], False, 1.0)
    assert summary.status == "completed"
    assert (summary.total_cost, summary.total_tokens, summary.total_calls) == (0.75, 30, 2)


def test_non_critical_failure_with_partial_allowed_is_partial():
    summary = decide_outcome("w", [_o("a", "success"), _o("b", "failed", critical=False)], True, None)
    assert summary.status == "partial"
    assert summary.reason == "non-critical agents did not succeed: b (failed)"
    assert summary.agents == AgentCounts(total=2, succeeded=1, failed=1)


def test_non_critical_failure_without_partial_fails():
    summary = decide_outcome("w", [_o("a", "success"), _o("b", "failed", critical=False)], False, None)
    assert summary.status == "failed" and summary.reason == "agents did not succeed: b (failed)"


def test_critical_failure_always_fails():
    summary = decide_outcome("w", [_o("a", "upstream_failed"), _o("b", "failed", critical=False)], True, None)
    assert summary.status == "failed"
    assert summary.reason == "critical agents did not succeed: a (upstream_failed)"


def test_summary_round_trips_through_xcom_json_and_keeps_its_keys():
    summary = decide_outcome("w", [_o("fin.a", "success", cost=0.25)], False, 1.0, run_id="r1")
    data = summary.model_dump(mode="json")
    assert {"workflow", "status", "reason", "agents", "per_agent", "total_input_tokens", "total_output_tokens",
            "total_tokens", "total_cost", "total_calls", "cost_budget", "run_id", "schema_version", "ended_by",
            "ledger_cost"} == set(data)
    assert run_summary_from_xcom(json.dumps(data)) == summary == run_summary_from_xcom(data)
    assert isinstance(run_summary_from_xcom(data), RunSummary)
    with pytest.raises(ContractVersionError, match="schema_version None"):
        run_summary_from_xcom({k: v for k, v in data.items() if k != "schema_version"})


def test_report_table():
    summary = decide_outcome("w", [_o("fin.a", "success", cost=0.25)], False, 1.0, run_id="r1")
    assert format_report(summary).splitlines()[0] == "Workflow w run r1: COMPLETED"
    assert format_report(summary.model_dump(mode="json")) == format_report(summary)
    assert format_report(summary).splitlines()[-1] == "Budget $1.00: 25.00% used"
