"""The status math from fixture rows: the seed's shape, counts, averages, money in micro-dollars, windows."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from erp_agents.monitoring.status import (
    AgentUsage,
    Budget,
    Governance,
    RunRow,
    StatusInput,
    StatusWindowError,
    TaskRow,
    TierHeadroom,
    budget_burn,
    spend_series,
    status_window,
    system_status,
    workflow_status,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
T0 = NOW - timedelta(hours=3)

SEED_SHAPE = {
    "engine": {"running", "total_workflows"},
    "monitoring": {"workflows", "agents"},
    "rate_limiting": {"total_requests", "total_tokens", "avg_wait_time"},
    "cost_tracking": {"total_cost", "total_tokens"},
}


def _fixture() -> StatusInput:
    runs = (
        RunRow("finance", "r1", "success", T0, T0 + timedelta(minutes=5)),
        RunRow("finance", "r2", "success", T0, T0 + timedelta(minutes=5)),
        RunRow("finance", "r3", "failed", T0, T0 + timedelta(minutes=5)),
        RunRow("hr", "r1", "running", T0, None, cost_budget=0.5),
    )
    tasks = (
        TaskRow("finance", "r1", "fin.a", "success", 1, 2.0, T0, T0 + timedelta(seconds=2)),
        TaskRow("finance", "r1", "fin.b", "success", 2, 4.0, T0, T0 + timedelta(seconds=4)),
        TaskRow("finance", "r2", "fin.a", "success", 1, 3.0, T0, T0 + timedelta(hours=1)),
        TaskRow("finance", "r3", "fin.a", "failed", 3, 1.0, T0, T0 + timedelta(hours=1)),
        TaskRow("finance", "r3", "fin.b", "upstream_failed", 0, None),
        TaskRow("hr", "r1", "hr.x", "deferred", 1, None, T0),
    )
    usage = (
        AgentUsage(
            "finance", "r1", "fin.a", "Finance", "gpt-4o-mini", "openai", 100, 10, 0.1, 2, limiter_wait_s=0.5
        ),
        AgentUsage(
            "finance",
            "r1",
            "fin.b",
            "Finance",
            "gpt-4o",
            "openai",
            200,
            20,
            0.2,
            1,
            rate_limited=2,
            retries=2,
            limiter_wait_s=1.0,
        ),
        AgentUsage("finance", "r2", "fin.a", "Finance", "gpt-4o-mini", "openai", 100, 10, 0.1, 1),
        AgentUsage("hr", "r1", "hr.x", "HR", "gpt-4o-mini", "openai", 50, 5, 0.3, 1),
    )
    return StatusInput(
        since=NOW - timedelta(hours=24),
        until=NOW,
        workflows=("finance", "hr", "idle"),
        runs=runs,
        tasks=tasks,
        usage=usage,
        outcomes={("finance", "r2"): "partial", ("finance", "r1"): "completed"},
        governance=Governance(
            headroom=(
                TierHeadroom("provider:openai", "requests_per_minute", 60, 45),
                TierHeadroom("provider:openai", "tokens_per_minute", 1000, 1200),
            ),
            budgets=(Budget("day:2026-12-01", 10.0, 2.5, 0.25),),
        ),
    )


def test_the_seeds_keys_are_all_there_and_typed_as_in_the_seed() -> None:
    status = system_status(_fixture())
    for section, keys in SEED_SHAPE.items():
        assert keys <= set(status[section]), section
    assert set(status["monitoring"]["workflows"]) >= {"started", "completed", "failed", "success_rate"}
    assert set(status["monitoring"]["agents"]) >= {"executed", "failed", "avg_execution_time"}
    assert isinstance(status["engine"]["running"], bool)
    assert isinstance(status["monitoring"]["workflows"]["success_rate"], float)
    assert isinstance(status["cost_tracking"]["total_cost"], float)


def test_counts_rates_and_averages() -> None:
    status = system_status(_fixture())
    assert status["engine"] == {"running": True, "total_workflows": 3}
    wf = status["monitoring"]["workflows"]
    assert (wf["started"], wf["completed"], wf["failed"], wf["partial"], wf["running"]) == (4, 2, 1, 1, 1)
    assert wf["success_rate"] == 66.67  # of finished runs: 2 of 3
    ag = status["monitoring"]["agents"]
    # executed = finished agent tasks (success or failed); upstream_failed never ran
    assert (ag["executed"], ag["failed"], ag["running"]) == (4, 1, 1)
    assert ag["avg_execution_time"] == 2.5  # (2 + 4 + 3 + 1) / 4
    assert ag["retries"] == 1 + 2  # try 2 and try 3
    rl = status["rate_limiting"]
    assert (rl["total_requests"], rl["total_tokens"], rl["rate_limited"], rl["request_retries"]) == (
        5,
        495,
        2,
        2,
    )
    assert rl["avg_wait_time"] == 0.3  # 1.5 s over 5 requests


def test_money_is_summed_exactly_and_split_by_workflow_module_and_model() -> None:
    status = system_status(_fixture())
    cost = status["cost_tracking"]
    assert cost["total_cost"] == 0.7  # 0.1 + 0.2 + 0.1 + 0.3 as floats is 0.7000000000000001
    assert cost["total_tokens"] == status["rate_limiting"]["total_tokens"] == 495
    assert cost["by_workflow"] == {
        "finance": {"cost": 0.4, "tokens": 440, "requests": 4},
        "hr": {"cost": 0.3, "tokens": 55, "requests": 1},
    }
    assert cost["by_module"]["HR"] == {"cost": 0.3, "tokens": 55, "requests": 1}
    assert cost["by_model"]["gpt-4o-mini"] == {"cost": 0.5, "tokens": 275, "requests": 4}
    assert cost["by_model"]["gpt-4o"]["cost"] == 0.2


def test_budgets_headroom_and_burn_of_running_runs() -> None:
    status = system_status(_fixture())
    assert status["cost_tracking"]["budgets"] == [
        {"account": "day:2026-12-01", "budget": 10.0, "spent": 2.5, "reserved": 0.25, "remaining": 7.25}
    ]
    headroom = status["rate_limiting"]["headroom"]
    assert headroom[0]["remaining"] == 15
    assert headroom[1]["remaining"] == 0  # over the limit (someone else shares the key): never negative
    assert status["cost_tracking"]["budget_burn"] == [
        {"dag_id": "hr", "run_id": "r1", "spent": 0.3, "budget": 0.5, "used_percent": 60.0}
    ]


def test_budget_burn_takes_the_ledger_budget_when_the_run_has_none() -> None:
    runs = [RunRow("w", "r", "running")]
    usage = [AgentUsage("w", "r", "a", cost_usd=0.25)]
    assert budget_burn(runs, usage, {("w", "r"): 1.0})[0]["used_percent"] == 25.0
    assert budget_burn(runs, usage)[0]["used_percent"] is None


def test_no_runs_gives_zeros_not_errors() -> None:
    status = system_status(
        StatusInput(since=NOW - timedelta(hours=1), until=NOW, workflows=(), runs=(), tasks=(), usage=())
    )
    assert status["monitoring"]["workflows"]["success_rate"] == 0.0
    assert status["monitoring"]["agents"]["avg_execution_time"] == 0.0
    assert status["rate_limiting"]["avg_wait_time"] == 0.0
    assert status["cost_tracking"]["total_cost"] == 0.0


def test_ledger_wait_figures_win_over_per_agent_ones() -> None:
    data = _fixture()
    data = StatusInput(**{**data.__dict__, "governance": Governance(limiter_requests=10, limiter_wait_s=2.0)})
    assert system_status(data)["rate_limiting"]["avg_wait_time"] == 0.2


@pytest.mark.parametrize("hours", [0, -1, 90 * 24 + 1])
def test_a_window_of_zero_or_beyond_ninety_days_is_refused(hours: float) -> None:
    with pytest.raises(StatusWindowError, match="status window"):
        status_window(hours, NOW)


def test_window_bounds() -> None:
    assert status_window(24, NOW) == (NOW - timedelta(hours=24), NOW)
    assert status_window(90 * 24, NOW)[0] == NOW - timedelta(days=90)


def test_spend_series_buckets_by_hour_of_the_task_end() -> None:
    data = _fixture()
    ends = {(t.dag_id, t.run_id, t.task_id): t.end_date for t in data.tasks if t.end_date}
    series = spend_series(data.usage, ends)
    assert series == [
        {
            "bucket": "2026-12-01T09:00:00+00:00",
            "workflow": "finance",
            "module": "Finance",
            "model": "gpt-4o",
            "cost": 0.2,
        },
        {
            "bucket": "2026-12-01T09:00:00+00:00",
            "workflow": "finance",
            "module": "Finance",
            "model": "gpt-4o-mini",
            "cost": 0.1,
        },
        {
            "bucket": "2026-12-01T10:00:00+00:00",
            "workflow": "finance",
            "module": "Finance",
            "model": "gpt-4o-mini",
            "cost": 0.1,
        },
    ]  # hr.x has not ended: not on the chart yet


def test_workflow_status_per_agent() -> None:
    data = _fixture()
    run = data.runs[0]
    result = workflow_status(
        run,
        [t for t in data.tasks if t.run_id == "r1" and t.dag_id == "finance"],
        [u for u in data.usage if u.run_id == "r1" and u.dag_id == "finance"],
        {"status": "completed", "reason": "all agents succeeded"},
    )
    assert result["outcome"] == "completed"
    assert result["total_cost"] == 0.3 and result["total_tokens"] == 330
    b = next(a for a in result["agents"] if a["task_id"] == "fin.b")
    assert (b["state"], b["retries"], b["model"], b["rate_limited"], b["limiter_wait_s"], b["duration"]) == (
        "success",
        1,
        "gpt-4o",
        2,
        1.0,
        4.0,
    )


def test_usage_from_a_summary_entry_and_from_a_cost_record() -> None:
    summary_entry = {
        "state": "success",
        "critical": True,
        "input_tokens": 5,
        "output_tokens": 2,
        "cost_usd": 0.01,
        "calls": 1,
        "latency_s": 0.2,
    }
    u = AgentUsage.from_mapping("erp", "r", "finance.ledger", summary_entry)
    assert (u.module, u.model, u.total_tokens, u.cost_usd) == ("finance", "", 7, 0.01)
    record = {
        "workflow": "erp",
        "agent": "ledger",
        "module": "Finance",
        "provider": "openai",
        "model": "gpt-4o",
        "input_tokens": 1,
        "output_tokens": 1,
        "cost_usd": 0.5,
        "calls": 3,
        "requests": [],
        "total_tokens": 2,
    }
    u = AgentUsage.from_mapping("erp", "r", "finance.ledger", record)
    assert (u.module, u.model, u.provider, u.calls) == ("Finance", "gpt-4o", "openai", 3)


def test_run_outcomes_follow_the_summarys_rule() -> None:
    from erp_agents.monitoring.client import run_outcomes

    runs = [
        RunRow("w", "ok", "success"),
        RunRow("w", "part", "success"),
        RunRow("w", "bad", "failed"),
        RunRow("w", "live", "running"),
    ]
    tasks = [
        TaskRow("w", "ok", "a", "success"),
        TaskRow("w", "part", "a", "success"),
        TaskRow("w", "part", "b", "failed"),
        TaskRow("w", "bad", "a", "failed"),
        TaskRow("w", "live", "a", None),
    ]
    assert run_outcomes(runs, tasks) == {
        ("w", "ok"): "completed",
        ("w", "part"): "partial",
        ("w", "bad"): "failed",
    }
