"""The status math: the seed's ``get_system_status`` JSON and one run's per-agent view, from plain rows.

Everything here is pure: rows come from Airflow's REST API (runs, task instances, XComs) and the
governance store (ledger spend, limiter headroom) through ``monitoring.sources``; this module only
counts, sums and averages, so the figures can be tested from fixture data. Money is summed as Decimal
and rounded to micro-dollars once, at the end.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

MAX_WINDOW_HOURS = 90 * 24
FINISHED_TI_STATES = frozenset({"success", "failed"})
RUNNING_TI_STATES = frozenset({"running", "deferred", "queued", "scheduled", "up_for_retry", "restarting"})


class StatusWindowError(ValueError):
    """A status window of 0 or more than 90 days: refused rather than silently clamped."""


def status_window(hours: float, now: datetime | None = None) -> tuple[datetime, datetime]:
    """(since, until) for the last ``hours``; 0, negative or more than 90 days is an error."""
    if not hours or hours <= 0 or hours > MAX_WINDOW_HOURS:
        raise StatusWindowError(
            f"status window must be more than 0 and at most {MAX_WINDOW_HOURS} hours, got {hours}"
        )
    until = now or datetime.now(timezone.utc)
    return until - timedelta(hours=hours), until


@dataclass(frozen=True)
class RunRow:
    """One DAG run of a workflow, as the REST API lists it."""

    dag_id: str
    run_id: str
    state: str
    start_date: datetime | None = None
    end_date: datetime | None = None
    cost_budget: float | None = None


@dataclass(frozen=True)
class TaskRow:
    """One agent task instance (the summary task is not an agent)."""

    dag_id: str
    run_id: str
    task_id: str
    state: str | None
    try_number: int = 1
    duration: float | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    map_index: int = -1


@dataclass(frozen=True)
class AgentUsage:
    """What one agent task spent: the summary's per-agent entry or the agent's own cost record."""

    dag_id: str
    run_id: str
    task_id: str
    module: str = ""
    model: str = ""
    provider: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    calls: int = 0
    failed_calls: int = 0
    rate_limited: int = 0
    retries: int = 0
    limiter_wait_s: float = 0.0
    latency_s: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @classmethod
    def from_mapping(cls, dag_id: str, run_id: str, task_id: str, data: Mapping[str, Any]) -> AgentUsage:
        """Read a summary ``per_agent`` entry or a ``cost_record`` XCom; unknown keys are ignored."""
        return cls(
            dag_id=dag_id,
            run_id=run_id,
            task_id=task_id,
            module=str(data.get("module") or (task_id.split(".", 1)[0] if "." in task_id else "")),
            model=str(data.get("model") or ""),
            provider=str(data.get("provider") or ""),
            input_tokens=int(data.get("input_tokens") or 0),
            output_tokens=int(data.get("output_tokens") or 0),
            cost_usd=float(data.get("cost_usd") or 0.0),
            calls=int(data.get("calls") or 0),
            failed_calls=int(data.get("failed_calls") or 0),
            rate_limited=int(data.get("rate_limited") or data.get("rate_limited_calls") or 0),
            retries=int(data.get("retries") or data.get("request_retries") or 0),
            limiter_wait_s=float(data.get("limiter_wait_s") or 0.0),
            latency_s=float(data.get("latency_s") or 0.0),
        )


@dataclass(frozen=True)
class TierHeadroom:
    """One limiter tier right now: its limit, what the current window holds, what is left."""

    scope: str
    tier: str
    limit: int
    used: int

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


@dataclass(frozen=True)
class Budget:
    """A daily budget account from the ledger (global or per module)."""

    account: str
    budget_usd: float
    spent_usd: float
    reserved_usd: float = 0.0

    @property
    def remaining_usd(self) -> float:
        return float(
            max(Decimal(0), _money(self.budget_usd) - _money(self.spent_usd) - _money(self.reserved_usd))
        )


@dataclass(frozen=True)
class Governance:
    """What the ledger and limiter add; empty when neither is configured."""

    ledger_cost_usd: float | None = None
    limiter_requests: int | None = None
    limiter_wait_s: float | None = None
    headroom: tuple[TierHeadroom, ...] = ()
    budgets: tuple[Budget, ...] = ()
    run_budgets: Mapping[tuple[str, str], float] = field(default_factory=dict)


@dataclass(frozen=True)
class StatusInput:
    """Everything one status answer is computed from."""

    since: datetime
    until: datetime
    workflows: tuple[str, ...]
    runs: tuple[RunRow, ...]
    tasks: tuple[TaskRow, ...]
    usage: tuple[AgentUsage, ...]
    outcomes: Mapping[tuple[str, str], str] = field(default_factory=dict)
    governance: Governance = field(default_factory=Governance)
    engine_running: bool = True


def _money(value: float) -> Decimal:
    return Decimal(str(value))


def _usd(total: Decimal) -> float:
    return float(total.quantize(Decimal("0.000001")))


def _sum_by(usage: Iterable[AgentUsage], key: str) -> dict[str, dict[str, Any]]:
    totals: dict[str, list[Any]] = defaultdict(lambda: [Decimal(0), 0, 0])
    for u in usage:
        entry = totals[getattr(u, key) or "unknown"]
        entry[0] += _money(u.cost_usd)
        entry[1] += u.total_tokens
        entry[2] += u.calls
    return {k: {"cost": _usd(v[0]), "tokens": v[1], "requests": v[2]} for k, v in sorted(totals.items())}


def _percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


def system_status(data: StatusInput) -> dict[str, Any]:
    """The seed's JSON (engine, monitoring, rate_limiting, cost_tracking) plus the extras operators need."""
    finished_runs = [r for r in data.runs if r.state in ("success", "failed")]
    failed_runs = [r for r in finished_runs if r.state == "failed"]
    completed_runs = [r for r in finished_runs if r.state == "success"]
    partial = sum(1 for r in completed_runs if data.outcomes.get((r.dag_id, r.run_id)) == "partial")
    executed = [t for t in data.tasks if t.state in FINISHED_TI_STATES]
    failed_agents = [t for t in executed if t.state == "failed"]
    durations = [t.duration for t in executed if t.duration is not None]
    requests = sum(u.calls for u in data.usage)
    tokens = sum(u.total_tokens for u in data.usage)
    cost = sum((_money(u.cost_usd) for u in data.usage), Decimal(0))
    gov = data.governance
    wait_total = (
        gov.limiter_wait_s if gov.limiter_wait_s is not None else sum(u.limiter_wait_s for u in data.usage)
    )
    wait_requests = gov.limiter_requests if gov.limiter_requests is not None else requests
    return {
        "engine": {"running": data.engine_running, "total_workflows": len(data.workflows)},
        "monitoring": {
            "workflows": {
                "started": len(data.runs),
                "completed": len(completed_runs),
                "failed": len(failed_runs),
                "success_rate": _percent(len(completed_runs), len(finished_runs)),
                "partial": partial,
                "running": sum(1 for r in data.runs if r.state in ("running", "queued")),
            },
            "agents": {
                "executed": len(executed),
                "failed": len(failed_agents),
                "avg_execution_time": round(sum(durations) / len(durations), 3) if durations else 0.0,
                "running": sum(1 for t in data.tasks if t.state in RUNNING_TI_STATES),
                "retries": sum(max(0, t.try_number - 1) for t in data.tasks),
            },
        },
        "rate_limiting": {
            "total_requests": requests,
            "total_tokens": tokens,
            "avg_wait_time": round(wait_total / wait_requests, 3) if wait_requests else 0.0,
            "rate_limited": sum(u.rate_limited for u in data.usage),
            "request_retries": sum(u.retries for u in data.usage),
            "headroom": [
                {"scope": h.scope, "tier": h.tier, "limit": h.limit, "used": h.used, "remaining": h.remaining}
                for h in gov.headroom
            ],
        },
        "cost_tracking": {
            "total_cost": _usd(cost),
            "total_tokens": tokens,
            "ledger_cost": gov.ledger_cost_usd,
            "by_workflow": _sum_by(data.usage, "dag_id"),
            "by_module": _sum_by(data.usage, "module"),
            "by_model": _sum_by(data.usage, "model"),
            "budgets": [
                {
                    "account": b.account,
                    "budget": b.budget_usd,
                    "spent": b.spent_usd,
                    "reserved": b.reserved_usd,
                    "remaining": b.remaining_usd,
                }
                for b in gov.budgets
            ],
            "budget_burn": budget_burn(data.runs, data.usage, gov.run_budgets),
        },
        "window": {
            "since": data.since.isoformat(),
            "until": data.until.isoformat(),
            "hours": round((data.until - data.since).total_seconds() / 3600, 3),
        },
    }


def budget_burn(
    runs: Iterable[RunRow],
    usage: Iterable[AgentUsage],
    run_budgets: Mapping[tuple[str, str], float] | None = None,
) -> list[dict[str, Any]]:
    """Spend against cost_budget for every run still in flight (the budget from the run or the ledger)."""
    spent: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for u in usage:
        spent[(u.dag_id, u.run_id)] += _money(u.cost_usd)
    rows = []
    for r in runs:
        if r.state not in ("running", "queued"):
            continue
        total = spent[(r.dag_id, r.run_id)]
        budget = r.cost_budget if r.cost_budget is not None else (run_budgets or {}).get((r.dag_id, r.run_id))
        rows.append(
            {
                "dag_id": r.dag_id,
                "run_id": r.run_id,
                "spent": _usd(total),
                "budget": budget,
                "used_percent": round(float(100 * total / _money(budget)), 2) if budget else None,
            }
        )
    return rows


def spend_series(
    usage: Iterable[AgentUsage], ends: Mapping[tuple[str, str, str], datetime], bucket_hours: int = 1
) -> list[dict[str, Any]]:
    """Spend per hour (of the agent task's end) by workflow, module and model: the dashboard's chart."""
    buckets: dict[tuple[str, str, str, str], Decimal] = defaultdict(Decimal)
    for u in usage:
        end = ends.get((u.dag_id, u.run_id, u.task_id))
        if end is None:
            continue
        start = end.replace(minute=0, second=0, microsecond=0)
        start -= timedelta(hours=start.hour % bucket_hours)
        buckets[(start.isoformat(), u.dag_id, u.module or "unknown", u.model or "unknown")] += _money(
            u.cost_usd
        )
    return [
        {"bucket": b, "workflow": w, "module": m, "model": mo, "cost": _usd(c)}
        for (b, w, m, mo), c in sorted(buckets.items())
    ]


def workflow_status(
    run: RunRow,
    tasks: Iterable[TaskRow],
    usage: Iterable[AgentUsage],
    outcome: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One run: per-agent state, tokens, cost, retries, limiter wait and timings."""
    by_task = {u.task_id: u for u in usage}
    agents: list[dict[str, Any]] = []
    total = Decimal(0)
    tokens = 0
    for t in sorted(
        tasks, key=lambda t: (t.start_date or datetime.max.replace(tzinfo=timezone.utc), t.task_id)
    ):
        u = by_task.get(t.task_id)
        total += _money(u.cost_usd) if u else Decimal(0)
        tokens += u.total_tokens if u else 0
        agents.append(
            {
                "task_id": t.task_id,
                "state": t.state,
                "try_number": t.try_number,
                "retries": max(0, t.try_number - 1),
                "start_date": t.start_date.isoformat() if t.start_date else None,
                "end_date": t.end_date.isoformat() if t.end_date else None,
                "duration": t.duration,
                "model": u.model if u else None,
                "input_tokens": u.input_tokens if u else 0,
                "output_tokens": u.output_tokens if u else 0,
                "total_tokens": u.total_tokens if u else 0,
                "cost": u.cost_usd if u else 0.0,
                "calls": u.calls if u else 0,
                "request_retries": u.retries if u else 0,
                "rate_limited": u.rate_limited if u else 0,
                "limiter_wait_s": u.limiter_wait_s if u else 0.0,
                "latency_s": u.latency_s if u else 0.0,
            }
        )
    return {
        "dag_id": run.dag_id,
        "run_id": run.run_id,
        "state": run.state,
        "outcome": (outcome or {}).get("status"),
        "reason": (outcome or {}).get("reason"),
        "start_date": run.start_date.isoformat() if run.start_date else None,
        "end_date": run.end_date.isoformat() if run.end_date else None,
        "cost_budget": run.cost_budget,
        "total_cost": _usd(total),
        "total_tokens": tokens,
        "agents": agents,
    }
