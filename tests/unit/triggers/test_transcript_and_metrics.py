"""MonitorConfig in effect: log_prompts keeps a masked, capped transcript in XCom; metrics honour prefix and enabled."""

from __future__ import annotations

import asyncio
import json

from pydantic_ai.messages import ModelResponse, TextPart
from pydantic_ai.models.function import FunctionModel
from pydantic_ai.usage import RequestUsage

from erp_agents.factory.plan import plan_workflow
from erp_agents.hooks import providers
from erp_agents.monitoring.metrics import Metrics
from erp_agents.spec.models import (
    Agent,
    CostConfig,
    EngineConfig,
    LLMConfig,
    ModelPrice,
    MonitorConfig,
    ProviderConfig,
    Workflow,
)
from erp_agents.triggers.agent import TRANSCRIPT_CAP, AgentTrigger

RUN = {"schema_version": 1, "dag_id": "wf", "run_id": "r", "task_id": "hr.a", "params": {}}


def _run(monkeypatch, *, log_prompts: bool, answer: str, prompt: str = "Say hello") -> dict:
    def factory(*, model, connection, options):
        return FunctionModel(lambda m, i: ModelResponse(parts=[TextPart(answer)],
                                                        usage=RequestUsage(input_tokens=5, output_tokens=2)),
                             model_name=model)

    monkeypatch.setattr(providers, "registered_providers", lambda: {"scripted": factory})
    monkeypatch.setenv("AIRFLOW_CONN_SCRIPTED_DEFAULT", json.dumps({"conn_type": "generic"}))
    engine = EngineConfig(
        default_provider="scripted",
        providers={"scripted": ProviderConfig(type="custom", factory="scripted", conn_id="scripted_default")},
        cost_config=CostConfig(model_costs={"scripted-1": ModelPrice(input=0.001, output=0.002)}),
        monitor_config=MonitorConfig(log_prompts=log_prompts),
    )
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

