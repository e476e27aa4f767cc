"""AgentTrigger's stored contract, without a server: pinned kwargs, versions, cancellation."""

from __future__ import annotations

import asyncio
import json

import pytest
from pydantic_ai.messages import ModelResponse, TextPart
from pydantic_ai.models.function import FunctionModel

from erp_agents.contracts import AgentFailed, load_event
from erp_agents.factory.plan import plan_workflow
from erp_agents.hooks import providers
from erp_agents.operators.agent import airflow_error
from erp_agents.spec.models import Agent, CostConfig, EngineConfig, LLMConfig, ModelPrice, ProviderConfig, Workflow
from erp_agents.triggers.agent import AgentTrigger

RUN = {"schema_version": 1, "dag_id": "wf", "run_id": "r", "task_id": "hr.a", "params": {}}
ENGINE = EngineConfig(
    default_provider="scripted",
    providers={"scripted": ProviderConfig(type="custom", factory="scripted", conn_id="scripted_default")},
    cost_config=CostConfig(model_costs={"scripted-1": ModelPrice(input=0.001, output=0.002)}),
)


def _invocation() -> str:
    wf = Workflow(name="wf", agents=[Agent(name="a", module="HR", llm_config=LLMConfig(model="scripted-1"),
                                           prompt_template="Hello")])
    return plan_workflow(wf, ENGINE).tasks[0].invocation.to_json()


def _events(trigger: AgentTrigger) -> list:
    async def collect():
        return [e async for e in trigger.run()]

    return asyncio.run(collect())


def test_serialize_output_is_pinned():
    trigger = AgentTrigger(invocation=_invocation(), end_in_triggerer=False, run=RUN, upstream_outputs={"x": 1})
    classpath, kwargs = trigger.serialize()
    assert classpath == "erp_agents.triggers.agent.AgentTrigger"
    assert kwargs == {
        "invocation": (
            '{"agent":{"llm_config":{"model":"scripted-1"},"module":"HR","name":"a","prompt_template":"Hello"},'
            '"budgets":{"module":"HR"},"price_overrides":{"scripted-1":{"input":0.001,"output":0.002}},'
            '"provider":{"conn_id":"scripted_default","factory":"scripted","type":"custom"},'
            '"provider_name":"scripted","rate_limits":[["provider:scripted",{"concurrent_requests":10,'
            '"requests_per_day":50000,"requests_per_hour":3000,"requests_per_minute":60,"tokens_per_day":null,'
            '"tokens_per_minute":100000}]],"schema_version":1,"task_id":"hr.a","workflow":"wf",'
                '"workflow_timeout_s":3600.0}'
        ),
        "end_in_triggerer": False,
        "run": RUN,
        "upstream_outputs": {"x": 1},
        "task_retries": 0,
        "end_failures_in_triggerer": False,
    }
    assert AgentTrigger(**kwargs).serialize() == (classpath, kwargs)
    # Kwargs stored before the failure-ending fields existed still load, and end failures on a worker.
    older = {k: v for k, v in kwargs.items() if k not in ("task_retries", "end_failures_in_triggerer")}
    assert AgentTrigger(**older).serialize() == (classpath, kwargs)


@pytest.mark.parametrize("version", [0, 2, None])
def test_stored_kwargs_of_another_version_end_the_task_permanently_naming_both(version):
    data = json.loads(_invocation())
    if version is None:
        del data["schema_version"]
    else:
        data["schema_version"] = version
    [event] = _events(AgentTrigger(invocation=json.dumps(data), end_in_triggerer=True))
    typed = load_event(event.payload)
    assert isinstance(typed, AgentFailed) and typed.error_type == "ContractVersionError"
    assert f"schema_version {version!r}, this erp_agents reads version 1" in typed.message
    assert type(airflow_error(typed, "hr.a")).__name__ == "AirflowFailException"


def test_a_renamed_key_is_a_permanent_error_not_a_dead_trigger():
    data = json.loads(_invocation())
    data["agent_spec"] = data.pop("agent")
    [event] = _events(AgentTrigger(invocation=json.dumps(data), end_in_triggerer=True))
    assert event.payload["error_type"] == "PermanentAgentError" and "agent_spec" in event.payload["message"]


def test_a_transient_error_is_retried_by_airflow():
    failed = AgentFailed(error_type="TransientAgentError", message="HTTP 503", cost_record=load_event(
        {"schema_version": 1, "status": "error", "error_type": "x", "message": "m", "cost_record": {
            "workflow": "w", "agent": "a", "module": "M", "provider": "p", "model": "m"}}).cost_record)
    error = airflow_error(failed, "hr.a")
    assert type(error).__name__ == "AgentRetryableError"
    from airflow.sdk.exceptions import AirflowException

    assert isinstance(error, AirflowException)


def test_a_cancelled_run_reports_its_cost_record(monkeypatch):
    pushed = []

    async def fake_push(run, record):
        pushed.append((run.task_id, record.status, record.calls))

    def factory(*, model, connection, options):
        async def slow(messages, info):
            await asyncio.sleep(30)
            return ModelResponse(parts=[TextPart("late")])

        return FunctionModel(slow, model_name=model)

    monkeypatch.setattr(providers, "registered_providers", lambda: {"scripted": factory})
    monkeypatch.setenv("AIRFLOW_CONN_SCRIPTED_DEFAULT", json.dumps({"conn_type": "generic"}))
    monkeypatch.setattr("erp_agents.triggers.agent.apush_cost_record", fake_push)
    trigger = AgentTrigger(invocation=_invocation(), end_in_triggerer=True, run=RUN, upstream_outputs={})

    async def cancel_soon():
        task = asyncio.ensure_future(trigger.run().__anext__())
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_soon())
    assert pushed == [("hr.a", "cancelled", 0)]


def test_a_chunk_started_in_the_triggerer_keeps_its_source_through_serialize():
    trigger = AgentTrigger(invocation=_invocation(), run=RUN, chunk_source="hr.a__items")
    classpath, kwargs = trigger.serialize()
    assert kwargs["chunk_source"] == "hr.a__items" and "chunk" not in kwargs
    assert AgentTrigger(**kwargs).serialize() == (classpath, kwargs)


@pytest.mark.parametrize("stored", [
    {"start": 5, "items": [6, 7]},
    '{"start": 5, "items": [6, 7]}',  # as a TaskSuccessEvent would have stored it
])
def test_a_chunk_reads_its_own_share_alone_by_map_index(monkeypatch, stored):
    from airflow.sdk.execution_time.xcom import XCom

    from erp_agents.contracts import RunContext
    from erp_agents.xcom import apull_chunk

    asked = {}

    async def aget_one(**kwargs):
        asked.update(kwargs)
        return stored

    monkeypatch.setattr(XCom, "aget_one", aget_one)
    run = RunContext.model_validate({**RUN, "map_index": 1})
    assert asyncio.run(apull_chunk(run, "hr.a__items")) == {"start": 5, "items": [6, 7]}
    assert (asked["task_id"], asked["key"], asked["map_index"], asked["run_id"]) == ("hr.a__items", "chunk_1", -1, "r")


@pytest.mark.parametrize("stored, map_index", [(None, 1), ({"a": 1}, 0), ([1, 2], 0)])
def test_a_chunk_without_a_share_fails_permanently_before_any_call(monkeypatch, stored, map_index):
    from airflow.sdk.execution_time.xcom import XCom

    async def aget_one(**kwargs):
        return stored

    monkeypatch.setattr(XCom, "aget_one", aget_one)
    trigger = AgentTrigger(invocation=_invocation(), end_in_triggerer=False, run={**RUN, "map_index": map_index},
                           chunk_source="hr.a__items")
    [event] = _events(trigger)
    failed = load_event(event.payload)
    from erp_agents.exceptions import is_permanent

    assert isinstance(failed, AgentFailed) and is_permanent(failed.error_type), failed.error_type
    assert "chunk" in failed.message and failed.cost_record.calls == 0
