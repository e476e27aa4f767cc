"""LLM clients as Airflow connections, and the result objects built from a run's summary."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from erp_agents import AnthropicClient, EngineConfig, OpenAIClient, OpenAICompatibleClient, WorkflowStatus
from erp_agents.engine import OrchestrationEngine
from erp_agents.results import WorkflowResult

KEY = "sk-live-0123456789abcdef"


def test_client_key_stays_out_of_repr_and_becomes_an_environment_connection(monkeypatch):
    client = OpenAIClient(api_key=SecretStr(KEY), base_url="http://gateway:8000/v1")
    assert KEY not in repr(client) and KEY not in str(client)
    monkeypatch.setenv("AIRFLOW_CONN_ERP_AGENTS_OPENAI", "{}")  # restored after the test
    name = client.expose()
    assert name == "AIRFLOW_CONN_ERP_AGENTS_OPENAI"
    import os

    assert json.loads(os.environ[name]) == {"conn_type": "openai", "password": KEY, "host": "http://gateway:8000/v1"}


def test_engine_makes_the_client_its_default_provider(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_CLAUDE", "{}")
    engine = OrchestrationEngine(EngineConfig(), llm_client=AnthropicClient(api_key=KEY, conn_id="claude"))
    assert engine.config.default_provider == "anthropic"
    assert engine.config.providers["anthropic"].conn_id == "claude"
    assert engine.config.providers["openai"].conn_id == "openai_default"  # the others are kept
    assert KEY not in engine.config.model_dump_json()


def test_openai_compatible_client_needs_an_endpoint():
    with pytest.raises(ValueError, match="base_url"):
        OpenAICompatibleClient(api_key=KEY)
    assert OpenAICompatibleClient(base_url="http://vllm:8000/v1").provider_config().type == "openai_compatible"


def test_result_from_summary_keys_agents_by_name():
    from erp_agents.costs.record import CostRecord
    from erp_agents.monitoring.outcome import AgentOutcome, decide_outcome

    record = CostRecord(workflow="wf", agent="a", module="Finance", provider="openai", model="m",
                        input_tokens=20, output_tokens=10, cost_usd=0.5, calls=2)
    summary = decide_outcome("wf", [
        AgentOutcome(task_id="finance.a", name="a", critical=True, state="success", record=record),
        AgentOutcome(task_id="hr.b", name="b", critical=False, state="failed", record=None),
    ], allow_partial=True, cost_budget=None, run_id="r1")
    result = WorkflowResult.from_summary(summary.model_dump(mode="json"), {"finance.a": {"total": 3}})
    assert result.status is WorkflowStatus.PARTIAL and result.status.value == "partial"
    assert result.agent_results["a"].output == {"total": 3} and result.agent_results["a"].succeeded
    assert result.agent_results["b"].output is None and not result.agent_results["b"].succeeded
    with pytest.raises(Exception, match="schema_version None"):
        WorkflowResult.from_summary({k: v for k, v in summary.model_dump(mode="json").items()
                                     if k != "schema_version"}, {})


def test_the_client_keeps_the_configured_providers_other_settings(monkeypatch):
    from erp_agents.spec.models import ProviderConfig, RateLimitConfig

    monkeypatch.setenv("AIRFLOW_CONN_ERP_AGENTS_OPENAI", "{}")
    configured = ProviderConfig(
        type="openai", conn_id="openai_default", pool="llm_big", request_timeout=30, openai_api="responses",
        structured_output="tool", rate_limit_config=RateLimitConfig(requests_per_minute=500),
        model_rate_limits={"gpt-4o": RateLimitConfig(requests_per_minute=60)},
    )
    engine = OrchestrationEngine(EngineConfig(providers={"openai": configured}), llm_client=OpenAIClient(api_key=KEY))
    provider = engine.config.providers["openai"]
    assert (provider.type, provider.conn_id) == ("openai", "erp_agents_openai")  # what the client owns
    assert provider.model_dump(exclude={"conn_id"}) == configured.model_dump(exclude={"conn_id"})
    # The per-model block still names only the tier it was given, so the provider's others apply.
    [_, (_, model_limits)] = engine.config.effective_rate_limits("openai", "gpt-4o")
    assert (model_limits.requests_per_minute, model_limits.tokens_per_minute) == (60, None)


def test_a_client_of_another_type_than_the_configured_provider_is_refused():
    from erp_agents.spec.models import ProviderConfig

    config = EngineConfig(providers={"openai": ProviderConfig(type="custom", factory="dry_run")})
    with pytest.raises(ValueError, match="providers.openai.type is 'custom' in the engine config, but the "
                                         "OpenAIClient given as llm_client is 'openai'"):
        OrchestrationEngine(config, llm_client=OpenAIClient(api_key=KEY))


def test_a_provider_whose_type_was_left_to_its_default_takes_the_clients(monkeypatch):
    from erp_agents.spec.models import ProviderConfig

    monkeypatch.setenv("AIRFLOW_CONN_CLAUDE", "{}")
    config = EngineConfig(providers={"openai": ProviderConfig(), "anthropic": ProviderConfig(pool="llm_claude")})
    engine = OrchestrationEngine(config, llm_client=AnthropicClient(api_key=KEY, conn_id="claude"))
    provider = engine.config.providers["anthropic"]
    assert (provider.type, provider.conn_id, provider.pool) == ("anthropic", "claude", "llm_claude")
