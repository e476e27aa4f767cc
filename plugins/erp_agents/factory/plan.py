"""Workflow -> plan: plain data describing the DAG (tasks, groups, edges, Airflow settings).

Maps the seed's fields onto Airflow's: priority -> priority_weight, RetryPolicy -> retries and
backoff, timeout -> execution_timeout, max_parallel_agents -> max_active_tasks, Workflow.timeout
-> dagrun_timeout, module -> TaskGroup and tag. No Airflow import, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from erp_agents.spec.graph import AgentGraph, build_graph
from erp_agents.spec.models import Agent, EngineConfig, RetryPolicy, RetryStrategy, Workflow

SUMMARY_TASK_ID = "workflow_summary"


def workflow_asset_uri(name: str) -> str:
    """The Asset a workflow publishes when a run completes (fully or partially)."""
    return f"erp-agents://workflows/{name}"


def group_id_for(module: str) -> str:
    return module.lower()


def task_id_for(agent: Agent) -> str:
    return f"{group_id_for(agent.module)}.{agent.name}"


@dataclass(frozen=True)
class AgentTaskPlan:
    """Everything the renderer needs for one agent task."""

    task_id: str
    group_id: str
    agent: Agent
    upstream_task_ids: tuple[str, ...]
    upstream_agents: dict[str, str]
    priority_weight: int
    retries: int
    retry_delay_s: float
    retry_exponential_backoff: float
    max_retry_delay_s: float
    execution_timeout_s: float
    retry_policy: RetryPolicy
    provider_name: str
    pool: str | None
    trigger_payload: dict[str, Any]


@dataclass(frozen=True)
class DagPlan:
    dag_id: str
    description: str
    schedule: str | None
    tags: tuple[str, ...]
    max_active_tasks: int
    dagrun_timeout_s: float | None
    params: dict[str, Any]
    doc_md: str
    groups: tuple[str, ...]
    tasks: tuple[AgentTaskPlan, ...]
    levels: tuple[tuple[str, ...], ...]
    summary_payload: dict[str, Any] = field(default_factory=dict)
    publishes: str = ""
    waits_for: tuple[str, ...] = ()


def effective_retry_policy(agent: Agent, workflow: Workflow, engine: EngineConfig) -> RetryPolicy:
    """Agent policy, else workflow policy, else engine default; an explicit agent max_retries wins."""
    policy = agent.retry_policy or workflow.retry_policy or engine.default_retry_policy
    if agent.retry_policy is None and "max_retries" in agent.model_fields_set:
        policy = policy.model_copy(update={"max_retries": agent.max_retries})
    return policy


def _airflow_backoff(policy: RetryPolicy) -> float:
    # Airflow task retries know exponential or constant delays; linear maps to constant here and
    # stays linear for the in-call retries.
    return policy.exponential_base if policy.strategy is RetryStrategy.EXPONENTIAL_BACKOFF else 0.0


def _price_overrides(engine: EngineConfig, model: str) -> dict[str, dict[str, float]]:
    bare = model.split(":", 1)[-1]
    return {k: v.model_dump() for k, v in engine.cost_config.model_costs.items() if k in (model, bare)}


def _agent_payload(agent: Agent, workflow: Workflow, engine: EngineConfig, upstream: dict[str, str]) -> dict[str, Any]:
    provider_name, provider = engine.provider_for(agent.llm_config)
    policy = effective_retry_policy(agent, workflow, engine)
    return {
        "workflow": workflow.name,
        "agent": agent.model_dump(mode="json", exclude_defaults=False),
        "upstream": upstream,
        "provider_name": provider_name,
        "provider": {**provider.model_dump(mode="json"), "structured_output": provider.output_mode()},
        "price_overrides": _price_overrides(engine, agent.llm_config.model),
        "retry_policy": policy.model_dump(mode="json"),
        "max_tool_rounds": engine.max_tool_rounds,
        "cost_budget": workflow.cost_budget,
    }


def _doc_md(workflow: Workflow, graph: AgentGraph, source: str | None) -> str:
    lines = [f"# {workflow.name}", "", workflow.description or "", ""]
    if source:
        lines += [f"Spec: `{source}`", ""]
    if workflow.wait_for:
        lines += ["Runs after: " + ", ".join(f"`{w}`" for w in workflow.wait_for), ""]
    budget = f"${workflow.cost_budget:.2f}" if workflow.cost_budget else "none"
    lines += [
        f"Agents: {len(workflow.agents)}; budget per run: {budget}; "
        f"partial completion: {'allowed' if workflow.allow_partial_completion else 'not allowed'}",
        "",
        "## Parallel levels",
        "",
        "| level | agents |",
        "|---|---|",
    ]
    by_name = {a.name: a for a in workflow.agents}
    for i, level in enumerate(graph.levels):
        lines.append(f"| {i} | " + ", ".join(f"`{task_id_for(by_name[n])}`" for n in level) + " |")
    return "\n".join(lines) + "\n"


def plan_workflow(workflow: Workflow, engine: EngineConfig | None = None, source: str | None = None) -> DagPlan:
    """Turn a validated workflow into a DAG plan."""
    engine = engine or EngineConfig()
    graph = build_graph(workflow)
    by_name = {a.name: a for a in workflow.agents}
    tasks = []
    for name in graph.order:
        agent = by_name[name]
        upstream = {dep: task_id_for(by_name[dep]) for dep in graph.upstream[name]}
        policy = effective_retry_policy(agent, workflow, engine)
        provider_name, provider = engine.provider_for(agent.llm_config)
        tasks.append(
            AgentTaskPlan(
                task_id=task_id_for(agent),
                group_id=group_id_for(agent.module),
                agent=agent,
                upstream_task_ids=tuple(upstream.values()),
                upstream_agents=upstream,
                priority_weight=agent.priority,
                retries=policy.max_retries,
                retry_delay_s=policy.base_delay,
                retry_exponential_backoff=_airflow_backoff(policy),
                max_retry_delay_s=policy.max_delay,
                execution_timeout_s=agent.timeout,
                retry_policy=policy,
                provider_name=provider_name,
                pool=agent.pool or provider.pool,
                trigger_payload=_agent_payload(agent, workflow, engine, upstream),
            )
        )
    groups = tuple(dict.fromkeys(t.group_id for t in tasks))
    tags = tuple(dict.fromkeys(["erp-agents", *(g for g in groups), *workflow.tags]))
    return DagPlan(
        dag_id=workflow.name,
        description=workflow.description or f"{workflow.module} workflow",
        schedule=workflow.schedule,
        tags=tags,
        max_active_tasks=workflow.max_parallel_agents,
        dagrun_timeout_s=workflow.timeout,
        params=dict(workflow.params),
        doc_md=_doc_md(workflow, graph, source),
        groups=groups,
        tasks=tuple(tasks),
        levels=graph.levels,
        publishes=workflow_asset_uri(workflow.name),
        waits_for=tuple(workflow_asset_uri(name) for name in workflow.wait_for),
        summary_payload={
            "workflow": workflow.name,
            "agents": {task_id_for(a): {"name": a.name, "critical": a.critical} for a in workflow.agents},
            "allow_partial_completion": workflow.allow_partial_completion,
            "cost_budget": workflow.cost_budget,
        },
    )
