"""The run report: the workflow_summary XCom of a DAG run, read back from Airflow's metadata DB."""

from __future__ import annotations

from typing import Any

from erp_agents.contracts import RunSummary
from erp_agents.factory.plan import SUMMARY_TASK_ID
from erp_agents.xcom import RETURN_VALUE_KEY, run_summary_from_xcom


def load_summary(dag_id: str, run_id: str | None = None) -> dict[str, Any]:
    """The summary of ``run_id`` (default: the latest run of ``dag_id``) as JSON-able data."""
    return load_run_summary(dag_id, run_id).model_dump(mode="json")


def load_run_summary(dag_id: str, run_id: str | None = None) -> RunSummary:
    """The summary of ``run_id`` (default: the latest run of ``dag_id``)."""
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        query = select(DagRun).where(DagRun.dag_id == dag_id)
        if run_id:
            query = query.where(DagRun.run_id == run_id)
        run = session.scalars(query.order_by(DagRun.id.desc()).limit(1)).first()
        if run is None:
            raise LookupError(f"no run of DAG {dag_id!r}" + (f" with run_id {run_id!r}" if run_id else ""))
        value = session.scalars(
            select(XComModel.value).where(
                XComModel.dag_id == dag_id,
                XComModel.run_id == run.run_id,
                XComModel.task_id == SUMMARY_TASK_ID,
                XComModel.key == RETURN_VALUE_KEY,
            )
        ).first()
        if value is None:
            raise LookupError(f"run {run.run_id!r} of {dag_id!r} has no summary (state: {run.state})")
    return run_summary_from_xcom(value).model_copy(update={"run_id": run.run_id})


def format_report(summary: RunSummary | dict[str, Any]) -> str:
    """A fixed-width table: one row per agent, then the run's totals."""
    if not isinstance(summary, RunSummary):
        summary = run_summary_from_xcom(summary)
    rows = [f"Workflow {summary.workflow} run {summary.run_id}: {summary.status.upper()}", f"  {summary.reason}", ""]
    header = f"{'agent':<40} {'state':<16} {'calls':>5} {'in tok':>8} {'out tok':>8} {'cost USD':>11}"
    rows += [header, "-" * len(header)]
    for task_id, agent in summary.per_agent.items():
        rows.append(
            f"{task_id:<40} {agent.state:<16} {agent.calls:>5} {agent.input_tokens:>8} "
            f"{agent.output_tokens:>8} {agent.cost_usd:>11.6f}"
        )
    rows.append("-" * len(header))
    rows.append(
        f"{'TOTAL':<40} {'':<16} {summary.total_calls:>5} {summary.total_input_tokens:>8} "
        f"{summary.total_output_tokens:>8} {summary.total_cost:>11.6f}"
    )
    budget = summary.cost_budget
    if budget:
        rows.append(f"Budget ${budget:.2f}: {100 * summary.total_cost / budget:.2f}% used")
    return "\n".join(rows)
