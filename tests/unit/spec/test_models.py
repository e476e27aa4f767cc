from __future__ import annotations

import pytest
from pydantic import ValidationError

from erp_agents import Agent, EngineConfig, LLMConfig, RateLimitConfig, RetryPolicy, RetryStrategy, Workflow


def _agent(name: str = "a", **kw) -> Agent:
    return Agent(name=name, llm_config=LLMConfig(model="gpt-4o-mini"), prompt_template="p", **kw)


def test_seed_defaults_and_names():
    agent = _agent()
    assert (agent.max_retries, agent.timeout, agent.priority, agent.critical, agent.module) == (3, 300.0, 5, True, "Custom")
    wf = Workflow(name="w", agents=[agent])
    assert (wf.max_parallel_agents, wf.timeout, wf.allow_partial_completion, wf.cost_budget) == (10, 3600.0, False, None)
    limits = RateLimitConfig()
    assert (limits.requests_per_minute, limits.requests_per_hour, limits.requests_per_day) == (60, 3000, 50000)
    assert (limits.tokens_per_minute, limits.concurrent_requests) == (100000, 10)


def test_unknown_key_is_an_error():
    with pytest.raises(ValidationError, match="temprature"):
        LLMConfig(model="gpt-4o", temprature=0.2)


def test_models_are_frozen():
    agent = _agent()
    with pytest.raises(ValidationError):
        agent.priority = 9  # type: ignore[misc]


def test_duplicate_agent_names_rejected():
    with pytest.raises(ValidationError, match="duplicate agent name 'a'"):
        Workflow(name="w", agents=[_agent("a"), _agent("a")])


def test_unknown_version_lists_supported_versions():
    with pytest.raises(ValidationError, match="unknown spec version 2; supported versions: 1"):
        Workflow(name="w", version=2, agents=[_agent()])


@pytest.mark.parametrize(
    ("strategy", "delays"),
    [
        (RetryStrategy.EXPONENTIAL_BACKOFF, [1.0, 2.0, 4.0, 8.0, 10.0]),
        (RetryStrategy.LINEAR_BACKOFF, [1.0, 2.0, 3.0, 4.0, 5.0]),
        (RetryStrategy.FIXED_DELAY, [1.0, 1.0, 1.0, 1.0, 1.0]),
    ],
)
def test_retry_delays(strategy, delays):
    policy = RetryPolicy(strategy=strategy, base_delay=1, max_delay=10)
    assert [policy.delay_for(n) for n in range(1, 6)] == delays


def test_retry_policy_rejects_max_below_base():
    with pytest.raises(ValidationError, match="max_delay must be at least base_delay"):
        RetryPolicy(base_delay=10, max_delay=1)


def test_provider_resolution():
    engine = EngineConfig()
    assert engine.provider_for(LLMConfig(model="gpt-4o"))[0] == "openai"
    assert engine.provider_for(LLMConfig(model="anthropic:claude-sonnet-4-5"))[0] == "anthropic"
    assert engine.provider_for(LLMConfig(model="claude-x", provider="anthropic"))[1].conn_id == "anthropic_default"
    with pytest.raises(ValueError, match="unknown provider 'azure'; configured providers: anthropic, openai"):
        engine.provider_for(LLMConfig(model="gpt-4o", provider="azure"))


def test_engine_default_provider_must_exist():
    with pytest.raises(ValidationError, match="default_provider 'x' is not among providers"):
        EngineConfig(default_provider="x")


def test_inline_tool_format_accepted():
    agent = _agent(tools=["finance.get_ledger_balance", {"type": "function", "function": {"name": "calculate_sum"}}])
    assert agent.tool_names() == ("finance.get_ledger_balance", "calculate_sum")


def test_rate_limits_refuse_zero_and_negative() -> None:
    import pytest
    from pydantic import ValidationError

    for bad in (0, -5):
        with pytest.raises(ValidationError, match="greater than 0"):
            RateLimitConfig(requests_per_minute=bad)


def test_per_model_limits_apply_with_the_providers_and_a_workflow_only_lowers() -> None:
    from erp_agents.spec.models import ProviderConfig

    engine = EngineConfig(providers={"openai": ProviderConfig(
        rate_limit_config=RateLimitConfig(requests_per_minute=500, concurrent_requests=20),
        model_rate_limits={"gpt-4o": RateLimitConfig(tokens_per_minute=30_000)},
    )})
    scopes = dict(engine.effective_rate_limits("openai", "openai:gpt-4o", RateLimitConfig(requests_per_minute=900,
                                                                                            concurrent_requests=5)))
    provider, model = scopes["provider:openai"], scopes["model:openai:gpt-4o"]
    assert (provider.requests_per_minute, provider.concurrent_requests) == (500, 5)  # 900 cannot raise 500
    assert (model.tokens_per_minute, model.requests_per_minute, model.concurrent_requests) == (30_000, 900, 5)
    assert model.requests_per_hour is None  # a model block naming one tier brings no defaults
    assert list(dict(engine.effective_rate_limits("openai", "gpt-4o-mini"))) == ["provider:openai"]


def test_per_model_limit_above_its_provider_is_refused() -> None:
    import pytest
    from pydantic import ValidationError

    from erp_agents.spec.models import ProviderConfig

    with pytest.raises(ValidationError, match="model_rate_limits.gpt-4o: requests_per_minute above"):
        EngineConfig(providers={"openai": ProviderConfig(model_rate_limits={
            "gpt-4o": RateLimitConfig(requests_per_minute=61)})})


def test_agent_cost_limit_above_workflow_budget_is_refused() -> None:
    import pytest
    from pydantic import ValidationError

    agent = Agent(name="a", llm_config=LLMConfig(model="gpt-4o-mini"), prompt_template="x", cost_limit=2.0)
    with pytest.raises(ValidationError, match="cost_limit 2.0, above the workflow's cost_budget 1.0"):
        Workflow(name="w", agents=(agent,), cost_budget=1.0)


def test_no_retry_means_one_attempt() -> None:
    assert RetryPolicy(strategy=RetryStrategy.NO_RETRY, max_retries=5).attempts == 1
    assert RetryPolicy(max_retries=2).attempts == 3


@pytest.mark.parametrize("max_retries", [0, 7])
def test_agent_max_retries_and_retry_policy_together_are_refused(max_retries: int) -> None:
    with pytest.raises(ValidationError, match="give max_retries or retry_policy, not both"):
        _agent(max_retries=max_retries, retry_policy=RetryPolicy(max_retries=1))
    assert _agent(retry_policy=RetryPolicy(max_retries=1)).retry_policy.max_retries == 1
    assert _agent(max_retries=max_retries).max_retries == max_retries


def test_an_agent_with_a_retry_policy_dumped_whole_loads_again() -> None:
    agent = _agent(retry_policy=RetryPolicy(max_retries=1))
    assert Agent.model_validate(agent.model_dump(mode="json")) == agent


@pytest.mark.parametrize(("target", "message"), [
    ({"type": "smtp", "to": "ops@example.com", "url": "https://hooks.example/x"}, "url applies to a webhook notifier only"),
    ({"type": "webhook", "url": "https://hooks.example/x", "to": "ops@example.com"}, "to applies to an smtp notifier only"),
    ({"type": "webhook", "conn_id": "alerts", "to": "ops@example.com"}, "to applies to an smtp notifier only"),
    ({"type": "webhook", "url": "https://hooks.example/x", "conn_id": "alerts"}, "url or conn_id, not both"),
])
def test_notifier_fields_of_the_other_type_are_refused(target: dict, message: str) -> None:
    from erp_agents.spec.models import NotifierSpec

    with pytest.raises(ValidationError, match=message):
        NotifierSpec.model_validate(target)


def test_notifier_fields_of_its_own_type_are_accepted() -> None:
    from erp_agents.spec.models import NotifierSpec

    assert NotifierSpec(type="smtp", to="ops@example.com", conn_id="smtp_ops").conn_id == "smtp_ops"
    assert NotifierSpec(type="webhook", url="https://hooks.example/x").url == "https://hooks.example/x"
    assert NotifierSpec(type="webhook", conn_id="alerts").conn_id == "alerts"


@pytest.mark.parametrize("kind", ["anthropic", "pydanticai", "custom"])
def test_openai_api_on_a_provider_without_the_openai_wire_is_refused(kind: str) -> None:
    from erp_agents.spec.models import ProviderConfig

    factory = {"factory": "dry_run"} if kind == "custom" else {}
    with pytest.raises(ValidationError, match=f"openai_api applies to openai and openai_compatible providers only, not to type '{kind}'"):
        ProviderConfig(type=kind, openai_api="responses", **factory)
    assert ProviderConfig(type=kind, **factory).openai_api == "chat"  # the default, as a dump carries it
    assert ProviderConfig(type="openai_compatible", openai_api="responses").openai_api == "responses"


@pytest.mark.parametrize("kind", ["openai", "openai_compatible", "anthropic", "pydanticai"])
def test_factory_on_a_provider_that_is_not_custom_is_refused(kind: str) -> None:
    from erp_agents.spec.models import ProviderConfig

    with pytest.raises(ValidationError, match=f"factory applies to a custom provider only, not to type '{kind}'"):
        ProviderConfig(type=kind, factory="dry_run")
    assert ProviderConfig(type="custom", factory="dry_run").factory == "dry_run"


def test_an_engine_config_dumped_whole_loads_again() -> None:
    from erp_agents.spec.models import ProviderConfig

    engine = EngineConfig(providers={"openai": ProviderConfig(), "anthropic": ProviderConfig(type="anthropic"),
                                     "rehearsal": ProviderConfig(type="custom", factory="dry_run")})
    assert EngineConfig.model_validate(engine.model_dump(mode="json")) == engine


def test_prompt_file_and_prompt_template_together_are_refused_in_python() -> None:
    with pytest.raises(ValidationError, match="give prompt_template or prompt_file, not both"):
        Agent(name="a", llm_config={"model": "gpt-4o-mini"}, prompt_template="p", prompt_file="memo.md")


def test_prompt_file_alone_is_read_from_the_current_directory(tmp_path, monkeypatch) -> None:
    (tmp_path / "memo.md").write_text("Draft the memo for {{ params.period }}.")
    monkeypatch.chdir(tmp_path)
    agent = Agent(name="a", llm_config={"model": "gpt-4o-mini"}, prompt_file="memo.md")
    assert agent.prompt_template == "Draft the memo for {{ params.period }}."
    assert agent.prompt_file == "memo.md"
    # A dump carries the template only, so it loads again without the file.
    assert "prompt_file" not in agent.model_dump()
    (tmp_path / "memo.md").unlink()
    assert Agent.model_validate(agent.model_dump()).prompt_template == agent.prompt_template


def test_prompt_file_alone_falls_back_to_the_project_prompts(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    agent = Agent(name="a", llm_config={"model": "gpt-4o-mini"}, prompt_file="payroll_export.md")
    assert agent.prompt_template.startswith("You are the payroll accountant")


@pytest.mark.parametrize(("name", "said"), [("absent.md", "'absent.md' not found in"),
                                            ("../memo.md", "must be a relative path without '..'")])
def test_an_unreadable_prompt_file_names_prompt_file(name: str, said: str, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValidationError, match=f"prompt_file {name!r}: cannot read prompt file: .*{said}") as err:
        Agent(name="a", llm_config={"model": "gpt-4o-mini"}, prompt_file=name)
    assert "prompt_template" not in str(err.value)
