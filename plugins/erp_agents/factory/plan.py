"""Workflow -> plan: plain data describing the DAG (tasks, groups, edges, Airflow settings).

Maps the seed's fields onto Airflow's: priority -> priority_weight, RetryPolicy -> retries and
backoff, timeout -> execution_timeout, max_parallel_agents -> max_active_tasks (and the agents'
own run-scoped slots, ``limits.agent_slots``), Workflow.timeout -> dagrun_timeout, module ->
TaskGroup and tag. Each agent task gets its ``AgentInvocation``, the typed hand-off to the trigger.
Task ids are built here and nowhere else. No Airflow import, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from erp_agents.contracts import AgentInvocation, Budgets, FanOut, SummaryAgent, SummaryPlan
from erp_agents.spec.digest import digest_line
from erp_agents.spec.graph import AgentGraph, build_graph
from erp_agents.limits.agent_slots import cap_to_enforce
from erp_agents.limits.pools import pool_for
from erp_agents.spec.models import (
    Agent,
    EngineConfig,
    Notifications,
    RetryPolicy,
    RetryStrategy,
    Workflow,
    bare_model_name,
)

SUMMARY_TASK_ID = "workflow_summary"


def workflow_asset_uri(name: str) -> str:
    """The Asset a workflow publishes when a run completes (fully or partially)."""
    return f"erp-agents://workflows/{name}"


def group_id_for(module: str) -> str:
    return module.lower()


def task_id_for(agent: Agent) -> str:
    """``group.name``: the task id Airflow gives the agent's task inside its module's TaskGroup."""
    return f"{group_id_for(agent.module)}.{agent.name}"


def items_task_id_for(agent: Agent) -> str:
    """``group.name__items``: the task that resolves a fan-out agent's list and cuts it into chunks."""
    return f"{group_id_for(agent.module)}.{agent.items_task_name}"


def _fan_out(agent: Agent) -> FanOut | None:
    source = agent.for_each
    if source is None:
        return None
    return FanOut(
        items_task_id=items_task_id_for(agent),
        tool=source.tool,
        arguments=dict(source.arguments),
        # Dependencies may be module-qualified; upstream outputs are keyed by the bare agent name.
        agent=source.agent.rsplit(".", 1)[-1] if source.agent else None,
        chunk_size=agent.chunk_size,
        max_items=agent.max_items,
    )


@dataclass(frozen=True)
class AgentTaskPlan:
    """Everything the renderer needs for one agent task."""

    task_id: str
    group_id: str
    local_id: str  # the id inside its TaskGroup
    agent: Agent
    upstream_task_ids: tuple[str, ...]
    priority_weight: int
    retries: int
    retry_delay_s: float
    retry_exponential_backoff: float
    max_retry_delay_s: float
    execution_timeout_s: float | None
    pool: str | None
    trigger_rule: str  # all_success, or all_done for on_upstream_failure: run
    invocation: AgentInvocation
    items_local_id: str | None = None  # fan-out: the items step in the same group; the agent task is mapped

    @property
    def fan_out(self) -> bool:
        return self.items_local_id is not None


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
    summary: SummaryPlan
    publishes: str = ""
    waits_for: tuple[str, ...] = ()
    notifications: Notifications | None = None


RUN_TIMEOUT_GRACE_S = 300.0
TASK_TIMEOUT_GRACE_S = 30.0


def task_retries(policy: RetryPolicy) -> int:
    """Airflow task retries: one, for what happens outside a call (a triggerer restart, a lost worker).
    Transient provider errors are retried inside the call, so the two layers never multiply beyond
    (in-call attempts) x 2; ``no_retry`` or ``max_retries: 0`` means no task retry either."""
    return 0 if policy.attempts == 1 else 1


def effective_retry_policy(agent: Agent, workflow: Workflow, engine: EngineConfig) -> RetryPolicy:
    """Agent policy, else workflow policy, else engine default; an explicit agent max_retries (never
    given together with an agent policy) wins over the inherited policy's."""
    policy = agent.retry_policy or workflow.retry_policy or engine.default_retry_policy
    if agent.retry_policy is None and "max_retries" in agent.model_fields_set:
        policy = policy.model_copy(update={"max_retries": agent.max_retries})
    return policy


def _airflow_backoff(policy: RetryPolicy) -> float:
    # Airflow task retries know exponential or constant delays; linear maps to constant here and
    # stays linear for the in-call retries.
    return policy.exponential_base if policy.strategy is RetryStrategy.EXPONENTIAL_BACKOFF else 0.0


def _invocation(
    agent: Agent, workflow: Workflow, engine: EngineConfig, upstream: dict[str, str], fan_out_upstream: tuple[str, ...],
    cap: int | None,
) -> AgentInvocation:
    provider_name, provider = engine.provider_for(agent.llm_config)
    model = agent.llm_config.model
    costs = engine.cost_config
    return AgentInvocation(
        workflow=workflow.name,
        task_id=task_id_for(agent),
        agent=agent,
        provider_name=provider_name,
        provider=provider,
        price_overrides={k: v for k, v in costs.model_costs.items() if k in (model, bare_model_name(model))},
        upstream=upstream,
        max_tool_rounds=engine.max_tool_rounds,
        retry_policy=effective_retry_policy(agent, workflow, engine),
        rate_limits=tuple(engine.effective_rate_limits(provider_name, model, workflow.rate_limit_config)),
        budgets=Budgets(
            agent_cost_limit=agent.cost_limit,
            workflow_cost_budget=workflow.cost_budget,
            module=agent.module,
            module_budget=costs.module_budgets.get(agent.module),
            global_budget=costs.global_budget,
        ),
        limiter=engine.limiter,
        ledger=engine.ledger,
        workflow_timeout_s=workflow.timeout,
        log_prompts=engine.monitor_config.log_prompts,
        fan_out=_fan_out(agent),
        fan_out_upstream=fan_out_upstream,
        max_parallel_agents=cap,
    )


def _doc_md(workflow: Workflow, engine: EngineConfig, graph: AgentGraph, source: str | None) -> str:
    lines = [f"# {workflow.name}", "", workflow.description or "", ""]
    if source:
        lines += [f"Spec: `{source}`", ""]
    lines += [digest_line(workflow, engine), ""]
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


def _execution_timeout_s(agent: Agent, workflow: Workflow, cap: int | None) -> float | None:
    """Airflow's backstop behind the agent's own timeout, which the agent enforces itself with the
    reason. Under a ``max_parallel_agents`` cap the wait for a slot comes first and is not part of the
    agent's timeout (``limits.agent_slots``), so the backstop is the workflow's timeout, or none."""
    if cap is None:
        return agent.timeout + TASK_TIMEOUT_GRACE_S
    return workflow.timeout + TASK_TIMEOUT_GRACE_S if workflow.timeout else None


def plan_workflow(workflow: Workflow, engine: EngineConfig | None = None, source: str | None = None) -> DagPlan:
    """Turn a validated workflow into a DAG plan."""
    engine = engine or EngineConfig()
    graph = build_graph(workflow)
    by_name = {a.name: a for a in workflow.agents}
    tasks = []
    cap = cap_to_enforce(workflow.agents, workflow.max_parallel_agents)  # None: a run cannot reach it
    for name in graph.order:
        agent = by_name[name]
        upstream = {dep: task_id_for(by_name[dep]) for dep in graph.upstream[name]}
        fan_out_upstream = tuple(dep for dep in upstream if by_name[dep].for_each is not None)
        policy = effective_retry_policy(agent, workflow, engine)
        provider_name, provider = engine.provider_for(agent.llm_config)
        tasks.append(
            AgentTaskPlan(
                task_id=task_id_for(agent),
                group_id=group_id_for(agent.module),
                local_id=agent.name,
                agent=agent,
                upstream_task_ids=tuple(upstream.values()),
                priority_weight=agent.priority,
                retries=task_retries(policy),
                retry_delay_s=policy.base_delay,
                retry_exponential_backoff=_airflow_backoff(policy),
                max_retry_delay_s=policy.max_delay,
                execution_timeout_s=_execution_timeout_s(agent, workflow, cap),
                pool=agent.pool or pool_for(provider_name, engine),
                trigger_rule="all_done" if agent.on_upstream_failure == "run" else "all_success",
                invocation=_invocation(agent, workflow, engine, upstream, fan_out_upstream, cap),
                items_local_id=agent.items_task_name if agent.for_each is not None else None,
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
        # Agents stop themselves at the workflow timeout, so workflow_summary still runs and reports
        # it; Airflow's own run timeout stays as the backstop behind that.
        dagrun_timeout_s=workflow.timeout + RUN_TIMEOUT_GRACE_S if workflow.timeout else None,
        params=dict(workflow.params),
        doc_md=_doc_md(workflow, engine, graph, source),
        groups=groups,
        tasks=tuple(tasks),
        publishes=workflow_asset_uri(workflow.name),
        waits_for=tuple(workflow_asset_uri(name) for name in workflow.wait_for),
        summary=SummaryPlan(
            workflow=workflow.name,
            agents={
                task_id_for(a): SummaryAgent(
                    name=a.name, critical=a.critical, items_task_id=items_task_id_for(a) if a.for_each else None
                )
                for a in workflow.agents
            },
            allow_partial_completion=workflow.allow_partial_completion,
            cost_budget=workflow.cost_budget,
            notifications=workflow.notifications,
            ledger=engine.ledger,
        ),
        notifications=workflow.notifications,
    )
