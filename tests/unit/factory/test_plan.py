from __future__ import annotations

import json

from erp_agents.contracts import AgentInvocation, Budgets, SummaryAgent, load_contract
from erp_agents.factory.plan import effective_retry_policy, plan_workflow
from erp_agents.spec.models import (
    Agent, CostConfig, EngineConfig, LLMConfig, ModelPrice, RetryPolicy, RetryStrategy, Workflow,
)


def _wf(**kw) -> Workflow:
    agents = kw.pop("agents", None) or [
        Agent(name="load", module="HR", llm_config=LLMConfig(model="gpt-4o-mini"), prompt_template="p", priority=9),
        Agent(name="close", module="Finance", llm_config=LLMConfig(model="gpt-4o"), prompt_template="p",
              dependencies=["HR.load"], timeout=120, max_retries=1),
    ]
    return Workflow(name="wf", agents=agents, **kw)


def test_seed_fields_map_to_airflow_settings():
    plan = plan_workflow(_wf(max_parallel_agents=4, timeout=900, schedule="0 2 * * *", tags=["x"]))
    # Agents stop at the workflow timeout themselves (so the summary reports it); Airflow's is the backstop.
    assert (plan.dag_id, plan.max_active_tasks, plan.dagrun_timeout_s, plan.schedule) == ("wf", 4, 1200, "0 2 * * *")
    assert plan.tasks[0].invocation.workflow_timeout_s == 900
    assert plan.groups == ("hr", "finance")
    assert plan.tags == ("erp-agents", "hr", "finance", "x")
    load, close = plan.tasks
    assert (load.task_id, load.priority_weight, load.upstream_task_ids) == ("hr.load", 9, ())
    assert (close.task_id, close.upstream_task_ids, close.execution_timeout_s) == ("finance.close", ("hr.load",), 150)
    assert (close.group_id, close.local_id) == ("finance", "close")
    assert close.invocation.upstream == {"load": "hr.load"}


def test_retry_policy_precedence():
    engine = EngineConfig(default_retry_policy=RetryPolicy(max_retries=5, base_delay=2, max_delay=30))
    wf = _wf()
    assert effective_retry_policy(wf.agents[0], wf, engine).max_retries == 5  # engine default
    assert effective_retry_policy(wf.agents[1], wf, engine).max_retries == 1  # explicit agent max_retries
    wf2 = _wf(retry_policy=RetryPolicy(max_retries=2, strategy=RetryStrategy.LINEAR_BACKOFF, base_delay=3, max_delay=9))
    plan = plan_workflow(wf2, engine)
    # In-call retries follow the policy; one Airflow task retry covers what is outside a call.
    assert plan.tasks[0].invocation.retry_policy.max_retries == 2
    assert (plan.tasks[0].retries, plan.tasks[0].retry_delay_s, plan.tasks[0].retry_exponential_backoff) == (1, 3, 0.0)
    no_retry = _wf(retry_policy=RetryPolicy(strategy=RetryStrategy.NO_RETRY))
    assert {t.retries for t in plan_workflow(no_retry).tasks} == {0}


def test_exponential_policy_sets_airflow_backoff():
    wf = _wf(retry_policy=RetryPolicy(exponential_base=3, base_delay=4, max_delay=100))
    task = plan_workflow(wf).tasks[0]
    assert (task.retry_exponential_backoff, task.retry_delay_s, task.max_retry_delay_s) == (3.0, 4.0, 100.0)


def test_invocation_carries_what_the_run_and_its_governance_need():
    engine = EngineConfig(cost_config=CostConfig(model_costs={"gpt-4o": ModelPrice(input=0.0025, output=0.01),
                                                              "other": ModelPrice(input=1, output=1)},
                                                 global_budget=50, module_budgets={"Finance": 10}))
    close = plan_workflow(_wf(cost_budget=3.0), engine).tasks[1]
    invocation = close.invocation
    assert invocation.price_table() == {"gpt-4o": {"input": 0.0025, "output": 0.01}}
    assert invocation.provider.conn_id == "openai_default" and invocation.provider_name == "openai"
    assert invocation.upstream == {"load": "hr.load"} and invocation.task_id == "finance.close"
    assert invocation.agent.name == "close" and invocation.retry_policy.max_retries == 1
    assert invocation.budgets == Budgets(workflow_cost_budget=3.0, module="Finance", module_budget=10, global_budget=50)
    assert [scope for scope, _ in invocation.rate_limits] == ["provider:openai"]
    assert invocation.limiter == engine.limiter and invocation.ledger == engine.ledger
    assert (invocation.schema_version, invocation.max_tool_rounds) == (1, 8)


def test_invocation_round_trips_through_its_stored_json():
    engine = EngineConfig(cost_config=CostConfig(model_costs={"gpt-4o": ModelPrice(input=0.0025, output=0.01)}))
    invocation = plan_workflow(_wf(cost_budget=3.0), engine).tasks[1].invocation
    text = invocation.to_json()
    assert load_contract(AgentInvocation, text, "test") == invocation
    assert json.loads(text)["schema_version"] == 1


def test_summary_payload_lists_criticality():
    agents = [
        Agent(name="a", llm_config=LLMConfig(model="m"), prompt_template="p"),
        Agent(name="b", llm_config=LLMConfig(model="m"), prompt_template="p", critical=False),
    ]
    plan = plan_workflow(_wf(agents=agents, allow_partial_completion=True))
    assert plan.summary.agents == {
        "custom.a": SummaryAgent(name="a", critical=True), "custom.b": SummaryAgent(name="b", critical=False)
    }
    assert plan.summary.allow_partial_completion is True


def test_agent_pool_defaults_to_its_providers_pool():
    from erp_agents.spec.models import Agent, EngineConfig, ProviderConfig, Workflow
    from erp_agents.factory.plan import plan_workflow

    engine = EngineConfig(providers={"openai": ProviderConfig(pool="openai_pool")})
    workflow = Workflow(name="w", agents=[
        Agent(name="a", llm_config={"model": "gpt-4o-mini"}, prompt_template="p"),
        Agent(name="b", llm_config={"model": "gpt-4o-mini"}, prompt_template="p", pool="batch"),
    ])
    assert {t.agent.name: t.pool for t in plan_workflow(workflow, engine).tasks} == {"a": "openai_pool", "b": "batch"}
    assert {t.pool for t in plan_workflow(workflow).tasks} == {"llm_openai", "batch"}  # one pool per provider


def test_rendered_tasks_take_their_pool():
    from erp_agents import Agent, Workflow, build_dag

    workflow = Workflow(name="w", agents=[
        Agent(name="a", llm_config={"model": "gpt-4o-mini"}, prompt_template="p"),
        Agent(name="b", llm_config={"model": "gpt-4o-mini"}, prompt_template="p", pool="batch"),
    ])
    assert {t.task_id: t.pool for t in build_dag(workflow).tasks} == {
        "custom.a": "llm_openai", "custom.b": "batch", "workflow_summary": "default_pool"}


def test_agents_without_a_module_take_the_workflows_everywhere_it_is_used():
    engine = EngineConfig(cost_config=CostConfig(module_budgets={"Finance": 2.0, "HR": 1.0}))
    wf = Workflow(name="wf", module="Finance", agents=[
        Agent(name="load", module="HR", llm_config=LLMConfig(model="gpt-4o-mini"), prompt_template="p"),
        Agent(name="close", llm_config=LLMConfig(model="gpt-4o-mini"), prompt_template="p",
              dependencies=["HR.load"]),
        {"name": "memo", "llm_config": {"model": "gpt-4o-mini"}, "prompt_template": "p",
         "dependencies": ["Finance.close"]},
    ])
    assert [a.module for a in wf.agents] == ["HR", "Finance", "Finance"]  # an agent's own module wins
    plan = plan_workflow(wf, engine)
    assert [t.task_id for t in plan.tasks] == ["hr.load", "finance.close", "finance.memo"]
    assert plan.groups == ("hr", "finance") and "finance" in plan.tags
    budgets = {t.local_id: t.invocation.budgets for t in plan.tasks}
    assert (budgets["close"].module, budgets["close"].module_budget) == ("Finance", 2.0)
    assert (budgets["load"].module, budgets["load"].module_budget) == ("HR", 1.0)
    assert set(plan.summary.agents) == {"hr.load", "finance.close", "finance.memo"}


def test_a_workflow_without_a_module_leaves_its_agents_in_custom():
    wf = _wf(agents=[Agent(name="a", llm_config=LLMConfig(model="gpt-4o-mini"), prompt_template="p")])
    assert wf.agents[0].module == "Custom" and plan_workflow(wf).tasks[0].task_id == "custom.a"
