"""The example custom provider (include/custom_providers: dry_run) through the real trigger."""

from __future__ import annotations

import asyncio
import json

from erp_agents.factory.plan import plan_workflow
from erp_agents.spec.models import Agent, CostConfig, EngineConfig, LLMConfig, ModelPrice, ProviderConfig, Workflow
from erp_agents.triggers.agent import AgentTrigger


def test_dry_run_provider_runs_tools_and_answers_offline(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_DRY_RUN_DEFAULT", json.dumps({"conn_type": "generic"}))
    engine = EngineConfig(
        providers={"openai": ProviderConfig(), "rehearsal": ProviderConfig(type="custom", factory="dry_run",
                                                                           conn_id="dry_run_default")},
        cost_config=CostConfig(model_costs={"dry-run": ModelPrice(input=0.0, output=0.0)}),
    )
    wf = Workflow(name="wf", agents=[Agent(name="a", module="HR", prompt_template="Headcount please",
                                           llm_config=LLMConfig(model="dry-run", provider="rehearsal"),
                                           tools=["hr.get_headcount"])])
    payload = plan_workflow(wf, engine).tasks[0].invocation.to_json()

    async def collect():
        return [e async for e in AgentTrigger(invocation=payload, end_in_triggerer=False,
                                              run={"schema_version": 1, "dag_id": "wf", "run_id": "r", "params": {}},
                                              upstream_outputs={}).run()]

    [event] = asyncio.run(collect())
    assert event.payload["status"] == "success", event.payload
    assert event.payload["result"]["output"].startswith("[dry-run] ")
    record = event.payload["cost_record"]
    assert (record["calls"], record["tool_calls"], record["cost_usd"]) == (2, 1, 0.0)
    assert record["input_tokens"] > 0


def test_an_agent_runs_on_its_own_connection(monkeypatch):
    """``llm_config.conn_id`` is the connection the agent's model gets, not the provider's."""
    from erp_agents.hooks import providers
    from pydantic_ai.messages import ModelResponse, TextPart
    from pydantic_ai.models.function import FunctionModel

    seen = []

    def factory(*, model, connection, options):
        seen.append(connection.login)
        return FunctionModel(lambda m, i: ModelResponse(parts=[TextPart("ok")]), model_name=model)

    monkeypatch.setattr(providers, "registered_providers", lambda: {"scripted": factory})
    monkeypatch.setenv("AIRFLOW_CONN_SCRIPTED_DEFAULT", json.dumps({"conn_type": "generic", "login": "provider"}))
    monkeypatch.setenv("AIRFLOW_CONN_TEAM_B", json.dumps({"conn_type": "generic", "login": "team-b"}))
    engine = EngineConfig(
        default_provider="scripted",
        providers={"scripted": ProviderConfig(type="custom", factory="scripted", conn_id="scripted_default")},
        cost_config=CostConfig(model_costs={"scripted-1": ModelPrice(input=0.0, output=0.0)}),
    )
    wf = Workflow(name="wf", agents=[
        Agent(name="own", module="HR", prompt_template="hi", llm_config=LLMConfig(model="scripted-1", conn_id="team_b")),
        Agent(name="shared", module="HR", prompt_template="hi", llm_config=LLMConfig(model="scripted-1")),
    ])
    run = {"schema_version": 1, "dag_id": "wf", "run_id": "r", "params": {}}

    async def collect(invocation):
        return [e async for e in AgentTrigger(invocation=invocation, end_in_triggerer=False, run=run,
                                              upstream_outputs={}).run()]

    for task in plan_workflow(wf, engine).tasks:
        [event] = asyncio.run(collect(task.invocation.to_json()))
        assert event.payload["status"] == "success", event.payload
    assert seen == ["team-b", "provider"]
