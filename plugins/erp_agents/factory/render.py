"""Plan -> Airflow DAG. The only factory stage that imports Airflow."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import DAG, Asset, TaskGroup

from erp_agents.costs.record import CostRecord
from erp_agents.exceptions import GraphError, SpecError, SpecProblem
from erp_agents.factory.plan import SUMMARY_TASK_ID, AgentTaskPlan, DagPlan, plan_workflow
from erp_agents.notifications import callbacks_for, for_agent
from erp_agents.operators.agent import LLMAgentOperator
from erp_agents.operators.for_each import ForEachItemsOperator
from erp_agents.operators.summary import WorkflowSummaryOperator
from erp_agents.spec.loader import format_path
from erp_agents.spec.models import EngineConfig, Workflow

START_DATE = datetime(2026, 1, 1, tzinfo=timezone.utc)


def render_dag(plan: DagPlan) -> DAG:
    """Build the DAG: a TaskGroup per module, one LLMAgentOperator per agent, a final summary."""
    dag = DAG(
        dag_id=plan.dag_id,
        description=plan.description[:200],
        schedule=[Asset(uri) for uri in plan.waits_for] if plan.waits_for else plan.schedule,
        start_date=START_DATE,
        catchup=False,
        tags=set(plan.tags),
        max_active_tasks=plan.max_active_tasks,
        max_active_runs=1 if plan.schedule or plan.waits_for else 16,
        dagrun_timeout=timedelta(seconds=plan.dagrun_timeout_s) if plan.dagrun_timeout_s else None,
        params=plan.params,
        doc_md=plan.doc_md,
    )
    callbacks = callbacks_for(plan.notifications)
    if callbacks["dag_on_failure_callback"]:
        dag.on_failure_callback = [*callbacks["dag_on_failure_callback"]]  # a list of the DAG's own type
    with dag:
        groups = {g: TaskGroup(group_id=g, prefix_group_id=True) for g in plan.groups}
        operators: dict[str, Any] = {}
        items_steps: dict[str, ForEachItemsOperator] = {}
        for task in plan.tasks:
            settings = _agent_settings(task)
            settings["on_failure_callback"] = callbacks["agent_on_failure_callback"] or None
            if not task.fan_out:
                operators[task.task_id] = LLMAgentOperator(
                    task_id=task.local_id, task_group=groups[task.group_id], invocation=task.invocation, **settings
                )
                continue
            items = items_steps[task.task_id] = _items_step(
                task, groups[task.group_id], for_agent(callbacks["agent_on_failure_callback"], task.task_id))
            # One mapped task per chunk, each started in the triggerer like any agent.
            operators[task.task_id] = LLMAgentOperator.chunk_tasks(
                items=items.output, items_task_id=items.task_id, invocation=task.invocation.to_json(),
                task_id=task.local_id, task_group=groups[task.group_id], **settings,
            )
        for task in plan.tasks:
            if task.upstream_task_ids:
                upstream = [operators[u] for u in task.upstream_task_ids]
                operators[task.task_id].set_upstream(upstream)
                if task.task_id in items_steps:
                    items_steps[task.task_id].set_upstream(upstream)
        summary = WorkflowSummaryOperator(
            task_id=SUMMARY_TASK_ID, summary=plan.summary, outlets=[Asset(plan.publishes)]
        )
        list(operators.values()) >> summary
    return dag


def _agent_settings(task: AgentTaskPlan) -> dict[str, Any]:
    """The Airflow settings of an agent task, mapped or not."""
    return {
        "priority_weight": task.priority_weight,
        "weight_rule": "absolute",
        "retries": task.retries,
        "retry_delay": timedelta(seconds=task.retry_delay_s),
        "retry_exponential_backoff": task.retry_exponential_backoff,
        "max_retry_delay": timedelta(seconds=task.max_retry_delay_s),
        "execution_timeout": timedelta(seconds=task.execution_timeout_s) if task.execution_timeout_s is not None else None,
        "pool": task.pool,
        "trigger_rule": task.trigger_rule,
        "doc_md": task.agent.description or None,
    }


def _items_step(task: AgentTaskPlan, group: TaskGroup, on_failure: list[Any]) -> ForEachItemsOperator:
    """The items step; a refused source notifies ``on_agent_failure`` here, as the chunk tasks then
    end ``upstream_failed`` and fire no callback."""
    invocation = task.invocation
    assert invocation.fan_out is not None and task.items_local_id is not None
    source = invocation.fan_out.agent
    record = CostRecord(workflow=invocation.workflow, agent=task.agent.name, module=task.agent.module,
                        provider=invocation.provider_name, model=invocation.model)
    return ForEachItemsOperator(
        task_id=task.items_local_id,
        task_group=group,
        fan_out=invocation.fan_out,
        record=record.to_dict(),
        upstream={source: invocation.upstream[source]} if source else None,
        fan_out_upstream=invocation.fan_out_upstream,
        priority_weight=task.priority_weight,
        weight_rule="absolute",
        trigger_rule=task.trigger_rule,
        on_failure_callback=on_failure or None,
        doc_md=f"Resolves the items of `{task.task_id}` and cuts them into chunks.",
    )


def build_dag(workflow: Workflow, engine: EngineConfig | None = None, source: str | None = None) -> DAG:
    """Workflow (from YAML or Python) -> DAG. Graph problems raise SpecError naming the agent field."""
    try:
        plan = plan_workflow(workflow, engine, source)
    except GraphError as exc:
        file = source or "<python>"
        raise SpecError([SpecProblem(file, 0, 0, format_path(p.path), p.message) for p in exc.problems]) from None
    return render_dag(plan)
