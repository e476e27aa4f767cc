"""workflow_summary: the last task of every workflow DAG (trigger rule all_done).

Reads each agent's state and cost record and decides the run's outcome the seed's way:
completed (all agents succeeded), partial (only non-critical agents failed and partial completion
is allowed) or failed (the task then fails, so the DAG run does too).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from erp_agents.costs.record import COST_XCOM_KEY, CostRecord, total_of
from erp_agents.monitoring.outcome import AgentOutcome, decide_outcome


class WorkflowSummaryOperator(BaseOperator):
    """Sum the run's cost records and decide completed / partial / failed."""

    template_fields = ()
    ui_color = "#fef3e8"

    def __init__(self, *, payload: dict[str, Any], **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        kwargs.setdefault("retries", 0)
        super().__init__(**kwargs)
        self.payload = payload

    def execute(self, context: Any) -> dict[str, Any]:
        ti = context["ti"]
        task_ids = list(self.payload["agents"])
        states = ti.get_task_states(dag_id=ti.dag_id, task_ids=task_ids, run_ids=[ti.run_id])
        states = states.get(ti.run_id, states)
        outcomes = []
        records = []
        for task_id in task_ids:
            record = CostRecord.from_xcom(ti.xcom_pull(task_ids=task_id, key=COST_XCOM_KEY))
            if record:
                records.append(record)
            outcomes.append(
                AgentOutcome(
                    task_id=task_id,
                    name=self.payload["agents"][task_id]["name"],
                    critical=self.payload["agents"][task_id]["critical"],
                    state=str(states.get(task_id) or "unknown"),
                    record=record,
                )
            )
        summary = decide_outcome(
            self.payload["workflow"], outcomes, self.payload["allow_partial_completion"], self.payload["cost_budget"]
        )
        totals = total_of(records)
        self.log.info(
            "Workflow %s: %s; %d/%d agents succeeded; %d tokens; $%.6f",
            summary["workflow"], summary["status"], summary["agents"]["succeeded"], summary["agents"]["total"],
            totals.total_tokens, totals.cost_usd,
        )
        if summary["status"] == "failed":
            ti.xcom_push(key="return_value", value=summary)
            raise AirflowFailException(f"workflow {summary['workflow']} failed: {summary['reason']}")
        return summary
