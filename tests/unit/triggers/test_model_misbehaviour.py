"""What a model or a tool can get wrong, each ending in a defined outcome.

A scripted pydantic-ai FunctionModel stands in for the provider, registered as a custom model
provider, so the run goes through the real trigger, GovernedModel, registry and tools.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import pytest
from pydantic_ai.messages import ModelResponse, RetryPromptPart, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

from erp_agents.factory.plan import plan_workflow
from erp_agents.hooks import providers
from erp_agents.spec.models import Agent, CostConfig, EngineConfig, LLMConfig, ModelPrice, ProviderConfig, Workflow
from erp_agents.tools.registry import ToolRegistry
from erp_agents.triggers import runner
from erp_agents.triggers.agent import AgentTrigger

RUN = {"schema_version": 1, "dag_id": "wf", "run_id": "r", "task_id": "hr.a", "params": {}}
USAGE = RequestUsage(input_tokens=100, output_tokens=10)


def slow_tool(seconds: float) -> dict:
    """Sleep, then answer.

    Args:
        seconds: how long to sleep.
    """
    time.sleep(seconds)
    return {"slept": seconds}


def headcount(department: str) -> dict:
    """Headcount of a department.

    Args:
        department: department name.
    """
    if department != "Finance":
        raise ValueError(f"unknown department {department!r}; valid: Finance")
    return {"department": department, "headcount": 7}


@pytest.fixture
def scripted(monkeypatch, tmp_path):
    """Install a scripted model; returns a function that runs the agent and gives back (event, messages)."""
    seen: list = []

    def install(script: Callable[[list, AgentInfo], ModelResponse], tools=("hr.headcount",)):
        def factory(*, model, connection, options):
            def wrapped(messages, info):
                seen.append(messages)
                return script(messages, info)
            return FunctionModel(wrapped, model_name=model)

        monkeypatch.setattr(providers, "registered_providers", lambda: {"scripted": factory})
        registry = ToolRegistry({"hr.headcount": headcount, "ops.slow_tool": slow_tool})
        monkeypatch.setattr(runner, "default_registry", lambda: registry)
        monkeypatch.setenv("AIRFLOW_CONN_SCRIPTED_DEFAULT", json.dumps({"conn_type": "generic"}))
        engine = EngineConfig(
            default_provider="scripted",
            providers={"scripted": ProviderConfig(type="custom", factory="scripted", conn_id="scripted_default")},
            cost_config=CostConfig(model_costs={"scripted-1": ModelPrice(input=0.001, output=0.002)}),
            max_tool_rounds=3,
        )
        wf = Workflow(name="wf", agents=[Agent(name="a", module="HR", llm_config=LLMConfig(model="scripted-1"),
                                               prompt_template="Count Finance", tools=list(tools))])
        payload = plan_workflow(wf, engine).tasks[0].invocation.to_json()

        async def collect():
            return [e async for e in AgentTrigger(invocation=payload, end_in_triggerer=False, run=RUN, upstream_outputs={}).run()]

        [event] = asyncio.run(collect())
        return event.payload, seen

    return install


def _tool_returns(messages) -> list:
    return [p for m in messages for p in m.parts if isinstance(p, (ToolReturnPart, RetryPromptPart))]


def _sent_back_for_retry(part) -> bool:
    """pydantic-ai reports a rejected call either as a retry prompt or as a return marked 'retried'."""
    return isinstance(part, RetryPromptPart) or getattr(part, "outcome", None) == "retried"


def test_invalid_tool_arguments_go_back_to_the_model_never_executed(scripted):
    def script(messages, info):
        if not _tool_returns(messages):
            return ModelResponse(parts=[ToolCallPart("headcount", {"department": 42, "extra": True})], usage=USAGE)
        return ModelResponse(parts=[TextPart("gave up on the tool")], usage=USAGE)

    payload, seen = scripted(script)
    assert payload["status"] == "success"
    [feedback] = _tool_returns(seen[-1])
    assert _sent_back_for_retry(feedback)  # validation errors, the function never ran
    assert "department" in str(feedback.content)


def test_unknown_tool_is_reported_to_the_model(scripted):
    def script(messages, info):
        if not _tool_returns(messages):
            return ModelResponse(parts=[ToolCallPart("drop_database", {})], usage=USAGE)
        return ModelResponse(parts=[TextPart("ok")], usage=USAGE)

    payload, seen = scripted(script)
    assert payload["status"] == "success"
    [feedback] = _tool_returns(seen[-1])
    assert _sent_back_for_retry(feedback) and "drop_database" in str(feedback.content)


def test_a_tool_that_raises_answers_the_model_with_the_error(scripted):
    def script(messages, info):
        if not _tool_returns(messages):
            return ModelResponse(parts=[ToolCallPart("headcount", {"department": "Sales"})], usage=USAGE)
        return ModelResponse(parts=[TextPart("noted")], usage=USAGE)

    payload, seen = scripted(script)
    [result] = _tool_returns(seen[-1])
    assert isinstance(result, ToolReturnPart) and not _sent_back_for_retry(result)
    assert result.content == {"error": "ValueError: unknown department 'Sales'; valid: Finance"}
    assert payload["status"] == "success" and payload["cost_record"]["tool_calls"] == 1


def test_a_hanging_tool_times_out(scripted, monkeypatch):
    original = ToolRegistry.build
    monkeypatch.setattr(ToolRegistry, "build", lambda self, names, timeout=0.5: original(self, names, timeout=timeout))

    def script(messages, info):
        if not _tool_returns(messages):
            return ModelResponse(parts=[ToolCallPart("slow_tool", {"seconds": 5})], usage=USAGE)
        return ModelResponse(parts=[TextPart("moved on")], usage=USAGE)

    started = time.monotonic()
    payload, seen = scripted(script, tools=("ops.slow_tool",))
    assert time.monotonic() - started < 4.5
    [feedback] = _tool_returns(seen[-1])
    assert "timed out" in str(feedback.content).lower() or "timeout" in str(feedback.content).lower()
    assert payload["status"] == "success"


def test_tool_rounds_are_capped(scripted):
    def script(messages, info):
        return ModelResponse(parts=[ToolCallPart("headcount", {"department": "Finance"})], usage=USAGE)

    payload, seen = scripted(script)
    assert payload["status"] == "error" and payload["error_type"] == "PermanentAgentError"
    assert "request_limit" in payload["message"]
    assert len(seen) == 4  # max_tool_rounds 3 + the final answer it never gave
    assert payload["cost_record"]["calls"] == 4


def test_every_round_is_counted_and_priced(scripted):
    def script(messages, info):
        if not _tool_returns(messages):
            return ModelResponse(parts=[ToolCallPart("headcount", {"department": "Finance"}),
                                        ToolCallPart("headcount", {"department": "Finance"})], usage=USAGE)
        return ModelResponse(parts=[TextPart("7 people")], usage=USAGE)

    payload, _ = scripted(script)
    record = payload["cost_record"]
    assert (record["calls"], record["input_tokens"], record["output_tokens"], record["tool_calls"]) == (2, 200, 20, 2)
    assert record["cost_usd"] == pytest.approx(2 * (100 * 0.001 + 10 * 0.002) / 1000)


def test_a_response_without_usage_is_estimated_and_flagged(scripted, monkeypatch):
    original = FunctionModel.request

    async def no_usage(self, *args, **kwargs):
        response = await original(self, *args, **kwargs)
        response.usage = RequestUsage()
        return response

    monkeypatch.setattr(FunctionModel, "request", no_usage)
    payload, _ = scripted(lambda m, i: ModelResponse(parts=[TextPart("fine " * 40)]), tools=())
    record = payload["cost_record"]
    assert payload["status"] == "success"
    assert record["estimated_usage_calls"] == 1
    # o200k counts "fine " x 40 as 40 tokens; an unknown model's estimate errs high, within its margin.
    assert 40 <= record["output_tokens"] <= 60
    assert record["input_tokens"] > 0 and record["cost_usd"] > 0


def test_an_empty_completion_is_a_defined_failure(scripted):
    payload, seen = scripted(lambda m, i: ModelResponse(parts=[], usage=USAGE), tools=())
    assert payload["status"] == "error"
    assert payload["error_type"] == "PermanentAgentError"


def test_an_unknown_finish_reason_still_yields_the_answer(scripted):
    payload, _ = scripted(lambda m, i: ModelResponse(parts=[TextPart("partial")], usage=USAGE,
                                                     provider_details={"finish_reason": "mystery"}), tools=())
    assert payload["status"] == "success" and payload["result"]["output"] == "partial"
