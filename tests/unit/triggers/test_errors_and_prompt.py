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
