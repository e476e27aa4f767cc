"""Decide a workflow run's outcome from its agents' states: completed, partial or failed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from erp_agents.costs.record import CostRecord, total_of

SUCCESS_STATES = frozenset({"success"})


@dataclass(frozen=True)
class AgentOutcome:
    task_id: str
    name: str
    critical: bool
    state: str
    record: CostRecord | None

    @property
    def succeeded(self) -> bool:
        return self.state in SUCCESS_STATES


def decide_outcome(
    workflow: str, outcomes: list[AgentOutcome], allow_partial: bool, cost_budget: float | None
) -> dict[str, Any]:
    """The seed's rule: any critical failure, or any failure without partial completion, fails the run."""
    failed = [o for o in outcomes if not o.succeeded]
    critical_failed = [o for o in failed if o.critical]
    if not failed:
        status, reason = "completed", "all agents succeeded"
    elif critical_failed or not allow_partial:
        status = "failed"
        names = ", ".join(f"{o.task_id} ({o.state})" for o in (critical_failed or failed))
        reason = f"critical agents did not succeed: {names}" if critical_failed else f"agents did not succeed: {names}"
    else:
        status = "partial"
        reason = "non-critical agents did not succeed: " + ", ".join(f"{o.task_id} ({o.state})" for o in failed)
    totals = total_of(o.record for o in outcomes if o.record)
    return {
        "workflow": workflow,
        "status": status,
        "reason": reason,
        "agents": {"total": len(outcomes), "succeeded": len(outcomes) - len(failed), "failed": len(failed)},
        "per_agent": {
            o.task_id: {
                "state": o.state,
                "critical": o.critical,
                "input_tokens": o.record.input_tokens if o.record else 0,
                "output_tokens": o.record.output_tokens if o.record else 0,
                "cost_usd": o.record.cost_usd if o.record else 0.0,
                "calls": o.record.calls if o.record else 0,
                "latency_s": o.record.latency_s if o.record else 0.0,
            }
            for o in outcomes
        },
        "total_input_tokens": totals.input_tokens,
        "total_output_tokens": totals.output_tokens,
        "total_tokens": totals.total_tokens,
        "total_cost": totals.cost_usd,
        "total_calls": totals.calls,
        "cost_budget": cost_budget,
    }
