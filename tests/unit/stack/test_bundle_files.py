"""The spec files OrchestrationEngine writes into the engine bundle load back into the same plan."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from erp_agents.factory.plan import plan_workflow
from erp_agents.spec.loader import load_spec_text
from erp_agents.spec.models import (
    Agent, EngineConfig, LLMConfig, ProviderConfig, RateLimitConfig, RetryPolicy, Workflow,
)
from erp_agents.stack.bundle_files import spec_yaml


def _fields_set(value: Any) -> Any:
    """Which fields were set, through every nested model: the part of a model equality does not see."""
    if isinstance(value, BaseModel):
        return {name: _fields_set(getattr(value, name)) for name in sorted(value.model_fields_set)}
    if isinstance(value, (list, tuple)):
        return [_fields_set(v) for v in value]
    if isinstance(value, dict):
        return {k: _fields_set(v) for k, v in value.items()}
    return value


def _explicit_defaults() -> tuple[Workflow, EngineConfig]:
    """Fields set to their default values on purpose, each of which means something because it was set."""
    engine = EngineConfig(providers={"openai": ProviderConfig(
        rate_limit_config=RateLimitConfig(requests_per_minute=300, tokens_per_minute=200_000),
        model_rate_limits={"gpt-4o": RateLimitConfig(requests_per_minute=60)},  # 60: the default rpm
    )})
    workflow = Workflow(
        name="explicit_defaults",
        retry_policy=RetryPolicy(max_retries=5),
        rate_limit_config=RateLimitConfig(tokens_per_minute=100_000),  # the default tpm: lowers 200k
        agents=[
            Agent(name="kept", llm_config=LLMConfig(model="gpt-4o"), prompt_template="p", max_retries=3),
            Agent(name="inherits", llm_config=LLMConfig(model="gpt-4o-mini"), prompt_template="p"),
        ],
    )
    return workflow, engine


def test_fields_set_to_their_default_survive_the_spec_files() -> None:
    workflow, engine = _explicit_defaults()
    workflow_again = load_spec_text(spec_yaml(workflow), "workflow.yaml")
    engine_again = load_spec_text(spec_yaml(engine), "engine.yaml")
    assert isinstance(workflow_again, Workflow) and isinstance(engine_again, EngineConfig)
    assert (workflow_again, engine_again) == (workflow, engine)

    def summary(wf: Workflow, eng: EngineConfig) -> list[tuple[Any, ...]]:
        return [(t.task_id, t.retries, t.invocation.retry_policy, t.invocation.rate_limits)
                for t in plan_workflow(wf, eng).tasks]

    before = summary(workflow, engine)
    assert summary(workflow_again, engine_again) == before
    kept, inherits = before
    assert kept[2].max_retries == 3 and inherits[2].max_retries == 5
    scopes = dict(kept[3])
    assert scopes["provider:openai"].tokens_per_minute == 100_000
    assert scopes["model:openai:gpt-4o"].requests_per_minute == 60
    header = {"kind", "version"}  # always written first, so a file says what it is
    for again, spec in ((workflow_again, workflow), (engine_again, engine)):
        assert {k: v for k, v in _fields_set(again).items() if k not in header} == _fields_set(spec)


def test_a_twice_written_spec_is_the_same_text() -> None:
    workflow, engine = _explicit_defaults()
    for spec in (workflow, engine):
        text = spec_yaml(spec)
        assert spec_yaml(load_spec_text(text, "spec.yaml")) == text


def test_a_prompt_read_from_a_file_is_written_as_its_template() -> None:
    agent = Agent(name="a", llm_config=LLMConfig(model="gpt-4o-mini"), prompt_file="payroll_export.md")
    text = spec_yaml(Workflow(name="w", agents=[agent]))
    assert "prompt_file" not in text
    again = load_spec_text(text, "workflow.yaml")
    assert isinstance(again, Workflow) and again.agents[0].prompt_template == agent.prompt_template
