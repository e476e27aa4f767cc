"""Decide a workflow run's outcome from its agents' states: completed, partial or failed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from erp_agents.contracts import AgentCounts, AgentSummary, RunSummary
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

    def summary(self) -> AgentSummary:
        record = self.record
        if record is None:
            return AgentSummary(name=self.name, state=self.state, critical=self.critical)
        return AgentSummary(
            name=self.name,
            state=self.state,
            critical=self.critical,
            input_tokens=record.input_tokens,
            output_tokens=record.output_tokens,
            cost_usd=record.cost_usd,
            calls=record.calls,
            latency_s=record.latency_s,
            retries=record.retries,
            rate_limited=record.rate_limited,
            limiter_wait_s=record.limiter_wait_s,
            module=record.module,
            model=record.model,
            provider=record.provider,
            error_type=record.error_type,
            error=record.error,
        )


def decide_outcome(
    workflow: str, outcomes: list[AgentOutcome], allow_partial: bool, cost_budget: float | None, run_id: str = ""
) -> RunSummary:
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
    ended_by = _ended_by(failed)
    if ended_by is not None and status != "completed":
        reason = f"the {ended_by} ended the run; {reason}"
    totals = total_of(o.record for o in outcomes if o.record)
    return RunSummary(
        workflow=workflow,
        run_id=run_id,
        status=status,  # type: ignore[arg-type]
        reason=reason,
        agents=AgentCounts(total=len(outcomes), succeeded=len(outcomes) - len(failed), failed=len(failed)),
        per_agent={o.task_id: o.summary() for o in outcomes},
        total_input_tokens=totals.input_tokens,
        total_output_tokens=totals.output_tokens,
        total_tokens=totals.total_tokens,
        total_cost=totals.cost_usd,
        total_calls=totals.calls,
        cost_budget=cost_budget,
        ended_by=ended_by,
    )


def _ended_by(failed: list[AgentOutcome]) -> Literal["budget", "timeout"] | None:
    """A budget refusal or a timeout among the failures: the summary names it as what ended the run."""
    kinds = {o.record.error_type for o in failed if o.record is not None}
    if "BudgetExceededError" in kinds:
        return "budget"
    if "AgentTimeoutError" in kinds:
        return "timeout"
    return None
