"""MonitorConfig in effect: log_prompts keeps a masked, capped transcript in XCom; metrics honour prefix and enabled."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

from pydantic_ai.messages import ModelResponse, TextPart
from pydantic_ai.models.function import FunctionModel
from pydantic_ai.usage import RequestUsage

from erp_agents.contracts import load_event
from erp_agents.factory.plan import plan_workflow
from erp_agents.hooks import providers
from erp_agents.monitoring.metrics import Metrics
from erp_agents.operators.agent import LLMAgentOperator
from erp_agents.spec.models import (
    Agent,
    CostConfig,
    EngineConfig,
    ForEach,
    LLMConfig,
    ModelPrice,
    MonitorConfig,
    ProviderConfig,
    Workflow,
)
from erp_agents.triggers.agent import AgentTrigger
from erp_agents.triggers.transcripts import TRANSCRIPT_CAP

RUN = {"schema_version": 1, "dag_id": "wf", "run_id": "r", "task_id": "hr.a", "params": {}}


def _scripted_engine(monkeypatch, factory: Any, *, log_prompts: bool) -> EngineConfig:
    """An engine whose one provider is ``factory``'s scripted model, with log_prompts as asked."""
    monkeypatch.setattr(providers, "registered_providers", lambda: {"scripted": factory})
    monkeypatch.setenv("AIRFLOW_CONN_SCRIPTED_DEFAULT", json.dumps({"conn_type": "generic"}))
    return EngineConfig(
        default_provider="scripted",
        providers={"scripted": ProviderConfig(type="custom", factory="scripted", conn_id="scripted_default")},
        cost_config=CostConfig(model_costs={"scripted-1": ModelPrice(input=0.001, output=0.002)}),
        monitor_config=MonitorConfig(log_prompts=log_prompts),
    )


def _run(monkeypatch, *, log_prompts: bool, answer: str, prompt: str = "Say hello") -> dict:
    def factory(*, model, connection, options):
        return FunctionModel(lambda m, i: ModelResponse(parts=[TextPart(answer)],
                                                        usage=RequestUsage(input_tokens=5, output_tokens=2)),
                             model_name=model)

    engine = _scripted_engine(monkeypatch, factory, log_prompts=log_prompts)
    wf = Workflow(name="wf", agents=[Agent(name="a", module="HR", llm_config=LLMConfig(model="scripted-1"),
                                           prompt_template=prompt)])
    invocation = plan_workflow(wf, engine).tasks[0].invocation.to_json()

    async def collect():
        return [e async for e in AgentTrigger(invocation=invocation, end_in_triggerer=False, run=RUN,
                                              upstream_outputs={}).run()]

    [event] = asyncio.run(collect())
    return event.payload


def test_log_prompts_keeps_the_prompt_and_answer_capped(monkeypatch):
    payload = _run(monkeypatch, log_prompts=True, answer="x" * (TRANSCRIPT_CAP + 10), prompt="Say hello to {{ ds }}")
    transcript = payload["transcript"]
    assert transcript["prompt"] == "Say hello to None"
    assert len(transcript["output"]) == TRANSCRIPT_CAP and transcript["truncated"] is True


def test_without_log_prompts_no_transcript_is_kept(monkeypatch):
    payload = _run(monkeypatch, log_prompts=False, answer="hello")
    assert payload["status"] == "success" and payload["transcript"] is None


def test_metrics_prefix_and_enabled():
    on = Metrics(prefix="acme_llm")
    on.record_request(workflow="w", module="M", model="m", provider="p", input_tokens=3, cost_usd=0.5)
    text = on.prometheus_text().decode()
    assert "acme_llm_requests_total" in text and "erp_agents_requests_total" not in text
    off = Metrics(prefix="quiet", enabled=False)
    off.record_request(workflow="w", module="M", model="m", provider="p", input_tokens=3)
    off_text = off.prometheus_text().decode()
    assert "quiet_requests_total{" not in off_text



def _run_chunk(monkeypatch, *, log_prompts: bool, end_in_triggerer: bool) -> Any:
    """A fan-out chunk of three items (the second fails) through the real trigger."""
    from airflow.sdk.log import mask_secret

    mask_secret("sk-item-secret-5551212")

    def answer(messages, info):
        prompt = messages[-1].parts[-1].content
        if "boom" in prompt:
            raise ValueError("this item breaks")
        return ModelResponse(parts=[TextPart(f"done: {prompt}")], usage=RequestUsage(input_tokens=5, output_tokens=2))

    def factory(*, model, connection, options):
        return FunctionModel(answer, model_name=model)

    engine = _scripted_engine(monkeypatch, factory, log_prompts=log_prompts)
    wf = Workflow(name="wf", agents=[Agent(name="a", module="HR", llm_config=LLMConfig(model="scripted-1"),
                                           prompt_template="Review {{ item }} (#{{ item_index }})",
                                           for_each=ForEach(tool="finance.list_open_invoices"))])
    invocation = plan_workflow(wf, engine).tasks[0].invocation.to_json()
    chunk = {"schema_version": 1, "start": 10, "items": ["inv-1 sk-item-secret-5551212", "boom", "inv-3"]}

    async def collect():
        return [e async for e in AgentTrigger(invocation=invocation, end_in_triggerer=end_in_triggerer,
                                              run=RUN, upstream_outputs={}, chunk=chunk).run()]

    [event] = asyncio.run(collect())
    return event


def test_log_prompts_keeps_each_fan_out_item_transcript_masked(monkeypatch):
    xcoms = _run_chunk(monkeypatch, log_prompts=True, end_in_triggerer=True).xcoms
    kept = xcoms["transcript"]
    assert [t["index"] for t in kept] == [10, 12]  # the failed item keeps none, as a failed agent
    assert kept[1]["prompt"] == "Review inv-3 (#12)" and kept[1]["output"] == "done: Review inv-3 (#12)"
    assert "sk-item-secret-5551212" not in json.dumps(kept) and "***" in kept[0]["prompt"]
    assert "transcript" not in json.dumps(xcoms["items"])  # the summary reads the items XCom: kept apart

    payload = _run_chunk(monkeypatch, log_prompts=True, end_in_triggerer=False).payload
    assert payload["status"] == "success" and [t["index"] for t in payload["transcripts"]] == [10, 12]
    typed = load_event(payload)
    assert [t.index for t in typed.transcripts] == [10, 12]
    pushed = {}
    ti = SimpleNamespace(xcom_push=lambda key, value: pushed.__setitem__(key, value))
    LLMAgentOperator.execute_complete(SimpleNamespace(task_id="hr.a"), {"ti": ti}, payload)  # the worker path
    assert pushed["transcript"] == kept


def test_without_log_prompts_a_fan_out_chunk_keeps_no_transcript(monkeypatch):
    xcoms = _run_chunk(monkeypatch, log_prompts=False, end_in_triggerer=True).xcoms
    assert "transcript" not in xcoms and len(xcoms["items"]) == 3
    assert _run_chunk(monkeypatch, log_prompts=False, end_in_triggerer=False).payload["transcripts"] is None
