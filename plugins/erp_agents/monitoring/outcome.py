"""Decide a workflow run's outcome from its agents' states: completed, partial or failed."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from erp_agents.contracts import AgentCounts, AgentSummary, RunSummary, SummaryAgent
from erp_agents.costs.record import CostRecord, total_of

SUCCESS_STATES = frozenset({"success"})


@dataclass(frozen=True)
class AgentOutcome:
    task_id: str
    name: str
    critical: bool
    state: str
    record: CostRecord | None
    items_total: int | None = None  # fan-out agents: items run and items that failed, chunks (mapped tasks)
    items_failed: int = 0
    chunks: int | None = None

    @property
    def succeeded(self) -> bool:
        """A fan-out agent with a failed item did not fully succeed: the run is partial or failed by the
        agent's ``critical`` flag, as for any other agent."""
        return self.state in SUCCESS_STATES and self.items_failed == 0

    @property
    def label(self) -> str:
        if self.items_total is not None and self.items_failed:
            return f"{self.task_id} ({self.items_failed} of {self.items_total} items failed)"
        return f"{self.task_id} ({self.state})"

    def summary(self) -> AgentSummary:
        record = self.record
        items: dict[str, int | None] = {}
        if self.items_total is not None:
            items = {"items_total": self.items_total, "items_ok": self.items_total - self.items_failed,
                     "items_failed": self.items_failed, "chunks": self.chunks}
        if record is None:
            return AgentSummary(name=self.name, state=self.state, critical=self.critical, **items)
        return AgentSummary(
            **items,
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
        names = ", ".join(o.label for o in (critical_failed or failed))
        reason = f"critical agents did not succeed: {names}" if critical_failed else f"agents did not succeed: {names}"
    else:
        status = "partial"
        reason = "non-critical agents did not succeed: " + ", ".join(o.label for o in failed)
    ended_by = _ended_by(failed)
    if ended_by is not None and status != "completed":
        reason = f"the {ended_by} ended the run; {reason}"
    totals = total_of(o.record for o in outcomes if o.record)
    return RunSummary(
        workflow=workflow,
        run_id=run_id,
        status=status,
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


_SUMMED = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "calls", "failed_calls",
           "tool_calls", "estimated_usage_calls", "retries", "rate_limited")


def merged_record(records: list[CostRecord], like: CostRecord) -> CostRecord:
    """One record for many (the items of a chunk, the chunks of a fan-out agent): counts summed, money
    summed exactly in micro-dollars. Request lists stay with the records they came from."""
    merged = like.model_copy(update={"requests": [], "status": "success", "error": None, "error_type": None})
    for name in _SUMMED:
        setattr(merged, name, sum(getattr(r, name) for r in records))
    merged.cost_usd = float(sum((Decimal(str(r.cost_usd)) for r in records), Decimal(0)))
    merged.latency_s = round(sum(r.latency_s for r in records), 6)
    merged.limiter_wait_s = round(sum(r.limiter_wait_s for r in records), 6)
    priced = next((r for r in records if r.price_source), None)
    if priced is not None:
        merged.price_source, merged.price_date = priced.price_source, priced.price_date
    return merged


def mapped_states(states: dict[str, Any], task_id: str) -> dict[int, str]:
    """The states of a mapped task's instances by map index (Airflow names them ``<task_id>_<index>``)."""
    prefix = f"{task_id}_"
    found = {}
    for key, state in states.items():
        suffix = key[len(prefix):] if key.startswith(prefix) else ""
        if suffix.isdigit():
            found[int(suffix)] = str(state)
    return found


def fan_out_outcome(ti: Any, task_id: str, agent: SummaryAgent, states: dict[str, Any]) -> AgentOutcome:
    """A fan-out agent's row: its chunks' states and records joined, its items counted.

    No chunk ran (the items step refused its source, or an upstream failed): the state is the
    unexpanded task's, and the record is the one the items step pushed with its error.
    """
    from erp_agents.xcom import COST_XCOM_KEY, ITEMS_XCOM_KEY, cost_record_from_xcom, item_results_from_xcom

    chunks = mapped_states(states, task_id)
    if not chunks:
        record = cost_record_from_xcom(ti.xcom_pull(task_ids=agent.items_task_id, key=COST_XCOM_KEY, map_indexes=-1))
        state = str(states.get(task_id) or "unknown")
        return AgentOutcome(task_id=task_id, name=agent.name, critical=agent.critical, state=state, record=record,
                            items_total=0, chunks=0)
    indexes = sorted(chunks)
    records = [r for r in (cost_record_from_xcom(ti.xcom_pull(task_ids=task_id, key=COST_XCOM_KEY, map_indexes=i))
                           for i in indexes) if r is not None]
    items = [item for i in indexes
             for item in item_results_from_xcom(ti.xcom_pull(task_ids=task_id, key=ITEMS_XCOM_KEY, map_indexes=i))]
    bad = [chunks[i] for i in indexes if chunks[i] not in SUCCESS_STATES]
    record = merged_record(records, records[0]) if records else None
    if record is not None and bad:
        failed = next((r for r in records if r.status != "success"), None)
        if failed is not None:
            record.status, record.error, record.error_type = failed.status, failed.error, failed.error_type
    return AgentOutcome(
        task_id=task_id, name=agent.name, critical=agent.critical, state=bad[0] if bad else "success",
        record=record, items_total=len(items), items_failed=sum(1 for i in items if i.status == "failed"),
        chunks=len(indexes),
    )
