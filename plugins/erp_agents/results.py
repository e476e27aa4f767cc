"""What a workflow run returns to Python callers: the original API's result objects, read from Airflow."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from erp_agents.contracts import RunSummary
from erp_agents.xcom import run_summary_from_xcom


class WorkflowStatus(str, Enum):
    COMPLETED = "completed"
    PARTIAL = "partial"
    FAILED = "failed"


@dataclass(frozen=True)
class AgentResult:
    """One agent's outcome in a run: its task state, its answer (XCom) and what it cost."""

    task_id: str
    name: str
    state: str
    critical: bool
    output: Any = None
    cost: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0
    latency_s: float = 0.0

    @property
    def succeeded(self) -> bool:
        return self.state == "success"


@dataclass(frozen=True)
class WorkflowResult:
    """A finished run: status completed / partial / failed, total cost and each agent's result."""

    workflow_id: str
    run_id: str
    status: WorkflowStatus
    reason: str
    total_cost: float
    total_tokens: int
    agent_results: dict[str, AgentResult] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_summary(cls, summary: RunSummary | dict[str, Any], outputs: dict[str, Any]) -> WorkflowResult:
        """Build from the workflow_summary XCom and the agents' outputs (by task id)."""
        if not isinstance(summary, RunSummary):
            summary = run_summary_from_xcom(summary)
        agents = {
            row.name: AgentResult(
                task_id=task_id,
                name=row.name,
                state=row.state,
                critical=row.critical,
                output=outputs.get(task_id),
                cost=row.cost_usd,
                input_tokens=row.input_tokens,
                output_tokens=row.output_tokens,
                calls=row.calls,
                latency_s=row.latency_s,
            )
            for task_id, row in summary.per_agent.items()
        }
        return cls(
            workflow_id=summary.workflow,
            run_id=summary.run_id,
            status=WorkflowStatus(summary.status),
            reason=summary.reason,
            total_cost=summary.total_cost,
            total_tokens=summary.total_tokens,
            agent_results=agents,
            summary=summary.model_dump(mode="json"),
        )
