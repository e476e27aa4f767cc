"""workflow_summary: the last task of every workflow DAG (trigger rule all_done).

Reads each agent's state and cost record and decides the run's outcome the seed's way:
completed (all agents succeeded), partial (only non-critical agents failed and partial completion
is allowed) or failed (the task then fails, so the DAG run does too). It also keeps every agent's
output in one XCom (``agent_outputs``), which the engine reads instead of one request per agent.

Under the scheduler it runs in the triggerer (``SummaryTrigger``), like the agents: a run needs no
worker process at all, and its result is there as soon as its last agent ends instead of after a
worker slot, a process start and a DAG parse. The one exception is a workflow with ``on_partial``
notifications: notifiers take the worker's full task context, so that summary runs on a worker.
``airflow dags test`` / ``dag.test()`` call ``execute()``. Both paths run ``summarize()``.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any, Protocol

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException
from airflow.triggers.base import StartTriggerArgs

from erp_agents.contracts import RunOutputs, SummaryPlan, load_contract
from erp_agents.costs.hook import CostHook
from erp_agents.exceptions import GovernanceStoreUnavailable
from erp_agents.monitoring.outcome import AgentOutcome, decide_outcome, fan_out_outcome
from erp_agents.notifications import callbacks_for, notify_partial
from erp_agents.xcom import (
    COST_XCOM_KEY,
    OUTPUTS_XCOM_KEY,
    RETURN_VALUE_KEY,
    cost_record_from_xcom,
    pull_agent_outputs,
)

SUMMARY_TRIGGER = "erp_agents.triggers.summary.SummaryTrigger"


class RunReader(Protocol):
    """What ``summarize`` reads and writes of its task instance (a worker's, or the triggerer's stand-in)."""

    dag_id: str
    run_id: str

    def get_task_states(self, *, dag_id: str, task_ids: list[str], run_ids: list[str]) -> dict[str, Any]: ...

    def xcom_pull(self, *, task_ids: str, key: str, map_indexes: int) -> Any: ...

    def xcom_push(self, *, key: str, value: Any) -> None: ...


class WorkflowSummaryOperator(BaseOperator):
    """Sum the run's cost records and decide completed / partial / failed."""

    template_fields = ()
    ui_color = "#fef3e8"

    def __init__(self, *, summary: SummaryPlan | dict[str, Any], **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        kwargs.setdefault("retries", 0)
        super().__init__(**kwargs)
        self.summary = load_contract(SummaryPlan, summary, "workflow_summary plan")
        self.start_from_trigger = not (self.summary.notifications and self.summary.notifications.on_partial)
        # The trigger never notifies, so its kwargs (stored in the serialized DAG) leave the notifiers
        # out: a webhook URL can carry its token.
        plan = self.summary.model_copy(update={"notifications": None})
        self.start_trigger_args = StartTriggerArgs(
            trigger_cls=SUMMARY_TRIGGER,
            trigger_kwargs={"plan": plan.model_dump_json()},
            next_method="execute_complete",
            next_kwargs=None,
            timeout=None,
        ) if self.start_from_trigger else None

    def execute(self, context: Any) -> dict[str, Any]:
        return summarize(self.summary, context["ti"], self.log, context)

    def execute_complete(self, context: Any, event: Any = None) -> dict[str, Any]:
        """A summary trigger ends its task itself; should one ever hand back, decide here instead."""
        return self.execute(context)


def summarize(plan: SummaryPlan, ti: RunReader, log: logging.Logger | Any,
              context: Any | None = None) -> dict[str, Any]:
    """Decide the run's outcome; push the outputs; return the summary, or push it and raise when failed.

    ``context`` (a worker's task context) is needed only to send ``on_partial`` notices.
    """
    task_ids = list(plan.agents)
    items_ids = [a.items_task_id for a in plan.agents.values() if a.items_task_id]
    states = ti.get_task_states(dag_id=ti.dag_id, task_ids=task_ids + items_ids, run_ids=[ti.run_id])
    states = states.get(ti.run_id, states)
    outcomes = [
        fan_out_outcome(ti, task_id, plan.agents[task_id], states) if plan.agents[task_id].items_task_id else
        AgentOutcome(
            task_id=task_id,
            name=plan.agents[task_id].name,
            critical=plan.agents[task_id].critical,
            state=str(states.get(task_id) or "unknown"),
            record=cost_record_from_xcom(ti.xcom_pull(task_ids=task_id, key=COST_XCOM_KEY, map_indexes=-1)),
        )
        for task_id in task_ids
    ]
    fan_out = tuple(task_id for task_id in task_ids if plan.agents[task_id].items_task_id)
    outputs = pull_agent_outputs(ti, {task_id: task_id for task_id in task_ids}, fan_out)
    ti.xcom_push(key=OUTPUTS_XCOM_KEY, value=RunOutputs(outputs=outputs).model_dump(mode="json"))
    summary = decide_outcome(plan.workflow, outcomes, plan.allow_partial_completion, plan.cost_budget, ti.run_id)
    summary = summary.model_copy(update={"ledger_cost": ledger_check(plan, ti, outcomes, log)})
    log.info(
        "Workflow %s: %s (%s); %d/%d agents succeeded; %d tokens; $%.6f",
        summary.workflow, summary.status, summary.reason, summary.agents.succeeded, summary.agents.total,
        summary.total_tokens, summary.total_cost,
    )
    if summary.status == "partial" and context is not None:
        failed = [o.task_id for o in outcomes if not o.succeeded]
        notify_partial(callbacks_for(plan.notifications)["on_partial"], context, failed)
    value = summary.model_dump(mode="json")
    if summary.status == "failed":
        ti.xcom_push(key=RETURN_VALUE_KEY, value=value)
        raise AirflowFailException(f"workflow {summary.workflow} failed: {summary.reason}")
    return value


def ledger_check(plan: SummaryPlan, ti: RunReader, outcomes: list[AgentOutcome], log: logging.Logger | Any) -> float | None:
    """The run's money from the ledger (every try), checked against the XCom records to the cent.

    XCom keeps only each task's last try; the ledger keeps all, so a mismatch on the last try is an
    error worth a log line, never a reason to fail the run. No ledger configured: None.
    """
    xcom_usd = {o.task_id: Decimal(str(o.record.cost_usd)) for o in outcomes if o.record is not None}
    try:
        costs = CostHook(plan.ledger.url).get_run_costs(ti.dag_id, ti.run_id, xcom_usd)
    except GovernanceStoreUnavailable as exc:
        log.error("Cost ledger unreachable, run totals come from XCom only: %s", exc)
        return None
    for agent, (ledger_usd, xcom) in sorted(costs.mismatches.items()):
        log.error("Cost mismatch for %s: ledger $%s, XCom $%s", agent, ledger_usd, xcom)
    return float(costs.total_usd)
