from __future__ import annotations

import asyncio

import httpx
import pytest
from pydantic_ai import exceptions as pai

from erp_agents.exceptions import PermanentAgentError
from erp_agents.triggers.errors import classify, redact
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
    (RuntimeError("something new"), True),
])
def test_classification(exc, retryable):
    assert classify(exc).retryable is retryable


def test_http_error_message_names_status_and_model():
    failure = classify(pai.ModelHTTPError(503, "gpt-4o-mini", body={"error": {"message": "overloaded"}}))
    assert failure.message.startswith("gpt-4o-mini: HTTP 503")


def test_redaction_removes_keys_of_every_shape():
    text = "Incorrect API key provided: sk-proj-abcdef1234567890 and sk-ant-api03-XYZxyz987654 Bearer abc.def.ghi123 api_key=hunter2secret"
    cleaned = redact(text, secrets=("hunter2secret",))
    for secret in ("sk-proj-abcdef1234567890", "sk-ant-api03-XYZxyz987654", "abc.def.ghi123", "hunter2secret"):
        assert secret not in cleaned
    assert "Incorrect API key provided" in cleaned


def test_prompt_renders_params_and_json_outputs():
    out = render_prompt("{{ params.period }}: {{ agents.a.output }}", {"params": {"period": "2026-10"}, "agents": {"a": {"output": {"x": 1}}}}, agent="b")
    assert out == '2026-10: {"x": 1}'


def test_prompt_errors_name_the_agent():
    with pytest.raises(PermanentAgentError, match="prompt_template of agent 'b': 'dict object' has no attribute 'missing'"):
        render_prompt("{{ agents.missing.output }}", {"agents": {}}, agent="b")
