from __future__ import annotations

import asyncio

import httpx
import pytest
from pydantic_ai import exceptions as pai

from erp_agents.exceptions import PermanentAgentError, TransientAgentError, UnknownToolError
from erp_agents.triggers.errors import as_agent_error, mask
from erp_agents.triggers.prompt import render_prompt


@pytest.mark.parametrize(("exc", "retryable"), [
    (pai.ModelHTTPError(500, "gpt-4o", body={"error": "boom"}), True),
    (pai.ModelHTTPError(429, "gpt-4o"), True),
    (pai.ModelHTTPError(400, "gpt-4o"), False),
    (pai.ModelHTTPError(401, "gpt-4o"), False),
    (asyncio.TimeoutError(), True),
    (httpx.ConnectError("refused"), True),
    (PermanentAgentError("bad template"), False),
    (pai.UsageLimitExceeded("request_limit of 9 exceeded"), False),
    (UnknownToolError("unknown tool 'x'"), False),
    (RuntimeError("something new"), True),
])
def test_the_type_decides_retries(exc, retryable):
    error = as_agent_error(exc)
    assert isinstance(error, TransientAgentError if retryable else PermanentAgentError)


def test_http_error_message_names_status_and_model():
    error = as_agent_error(pai.ModelHTTPError(503, "gpt-4o-mini", body={"error": {"message": "overloaded"}}))
    assert str(error).startswith("gpt-4o-mini: HTTP 503")


def test_messages_are_masked_by_airflows_masker_and_ordinary_words_are_kept():
    from airflow.sdk.log import mask_secret

    mask_secret("sim-demo-key-123456")
    text = "Incorrect API key provided: sim-demo-key-123456 for task-instance risk-assessment"
    assert mask(text) == "Incorrect API key provided: *** for task-instance risk-assessment"
    error = as_agent_error(PermanentAgentError(text))
    assert "sim-demo-key-123456" not in str(error) and type(error) is PermanentAgentError


def test_prompt_renders_params_and_json_outputs():
    out = render_prompt("{{ params.period }}: {{ agents.a.output }}", {"params": {"period": "2026-10"}, "agents": {"a": {"output": {"x": 1}}}}, agent="b")
    assert out == '2026-10: {"x": 1}'


def test_prompt_errors_name_the_agent():
    with pytest.raises(PermanentAgentError, match="prompt_template of agent 'b': 'dict object' has no attribute 'missing'"):
        render_prompt("{{ agents.missing.output }}", {"agents": {}}, agent="b")


def test_on_upstream_failure_documents_the_variable_the_prompt_gets():
    import re

    from erp_agents.contracts import AgentInvocation, Budgets, RunContext
    from erp_agents.spec.models import Agent, LLMConfig, ProviderConfig
    from erp_agents.triggers.runner import prompt_context

    description = Agent.model_fields["on_upstream_failure"].description or ""
    documented = re.findall(r"`agents\.<name>\.(\w+)`", description)
    agent = Agent(name="b", llm_config=LLMConfig(model="gpt-4o-mini"), prompt_template="x", dependencies=["a"])
    invocation = AgentInvocation(workflow="w", task_id="custom.b", agent=agent, provider_name="openai",
                                 provider=ProviderConfig(), budgets=Budgets(module="Custom"), upstream={"a": "custom.a"})
    failed_upstream = prompt_context(invocation, RunContext(dag_id="w", run_id="r"), {"a": None})["agents"]["a"]
    assert documented and all(failed_upstream.get(name) is True for name in documented)
    assert failed_upstream["output"] is None
