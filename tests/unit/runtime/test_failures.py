"""failures.classify: what real provider errors mean, read through the real SDKs where possible."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from openai import AsyncOpenAI
from pydantic_ai import Agent
from pydantic_ai import exceptions as pai
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from erp_agents.exceptions import PermanentAgentError, TransientAgentError
from erp_agents.runtime.failures import classify, parse_retry_after, truncate

OK_BODY = {
    "id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


def _raise_from(response: httpx.Response) -> BaseException:
    """The exception pydantic-ai raises when the OpenAI endpoint answers ``response``."""
    client = AsyncOpenAI(base_url="http://provider.test/v1", api_key="sk-test-secret", max_retries=0,
                         http_client=httpx.AsyncClient(transport=httpx.MockTransport(lambda request: response)))
    model = OpenAIChatModel("gpt-4o-mini", provider=OpenAIProvider(openai_client=client))
    with pytest.raises(Exception) as info:
        asyncio.run(Agent(model).run("hello"))
    return info.value


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json={"error": {"message": message, "type": "x", "code": None}}, headers=headers)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 529])
def test_transient_statuses(status: int) -> None:
    failure = classify(_raise_from(_error(status, f"busy {status}")), mask=str)
    assert failure is not None and failure.transient
    assert failure.status_code == status and failure.message == f"busy {status}"
    assert isinstance(failure.error(), TransientAgentError)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_permanent_statuses_keep_the_server_message(status: int) -> None:
    failure = classify(_raise_from(_error(status, "the server says no")), mask=str)
    assert failure is not None and not failure.transient
    error = failure.error()
    assert isinstance(error, PermanentAgentError) and "the server says no" in str(error) and str(status) in str(error)


def test_context_length_is_permanent_even_as_a_400_with_a_code() -> None:
    response = httpx.Response(400, json={"error": {"message": "maximum context length is 128000 tokens",
                                                   "type": "invalid_request_error", "code": "context_length_exceeded"}})
    failure = classify(_raise_from(response), mask=str)
    assert failure is not None and not failure.transient and "context length" in failure.reason


def test_retry_after_ms_wins_over_retry_after() -> None:
    failure = classify(_raise_from(_error(429, "slow", {"retry-after": "3", "retry-after-ms": "2500"})), mask=str)
    assert failure is not None and failure.retry_after == 2.5
    failure = classify(_raise_from(_error(503, "down", {"retry-after": "7"})), mask=str)
    assert failure is not None and failure.retry_after == 7.0


def test_malformed_200_is_transient_until_the_last_attempt_and_quotes_the_body() -> None:
    exc = _raise_from(httpx.Response(200, content=b'{"id": "x", "choices": [ <<garbage', headers={
        "content-type": "application/json"}))
    failure = classify(exc, mask=str)
    assert failure is not None and failure.transient and failure.malformed
    assert isinstance(failure.error(final=False), TransientAgentError)
    assert isinstance(failure.error(final=True), PermanentAgentError)


def test_dropped_connection_and_transport_timeout_are_transient() -> None:
    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.")

    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out")

    for handler, reason in ((drop, "connection failed"), (hang, "timeout")):
        client = AsyncOpenAI(base_url="http://provider.test/v1", api_key="k", max_retries=0,
                             http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)))
        model = OpenAIChatModel("gpt-4o-mini", provider=OpenAIProvider(openai_client=client))
        with pytest.raises(Exception) as info:
            asyncio.run(Agent(model).run("hello"))
        failure = classify(info.value, mask=str)
        assert failure is not None and failure.transient and failure.reason == reason


def test_plain_httpx_and_asyncio_errors() -> None:
    request = httpx.Request("POST", "http://x")
    status = httpx.HTTPStatusError("boom", request=request, response=httpx.Response(
        503, request=request, headers={"retry-after": "4"}, json={"error": {"message": "later"}}))
    failure = classify(status, mask=str)
    assert failure is not None and failure.transient and failure.retry_after == 4 and failure.message == "later"
    bad = httpx.HTTPStatusError("boom", request=request, response=httpx.Response(401, request=request, text="nope"))
    failure = classify(bad, mask=str)
    assert failure is not None and not failure.transient and failure.message == "nope"
    assert classify(asyncio.TimeoutError(), mask=str).transient  # type: ignore[union-attr]
    assert classify(httpx.ConnectError("refused"), mask=str).transient  # type: ignore[union-attr]


def test_errors_that_are_not_the_providers_are_not_classified() -> None:
    assert classify(asyncio.CancelledError()) is None
    assert classify(PermanentAgentError("budget exhausted")) is None
    assert classify(KeyError("bug")) is None
    assert classify(pai.UserError("misuse")) is None


def test_content_filter_is_permanent_and_unexpected_behaviour_is_malformed() -> None:
    assert not classify(pai.ContentFilterError("blocked"), mask=str).transient  # type: ignore[union-attr]
    failure = classify(pai.UnexpectedModelBehavior("bad shape", body=json.dumps({"x": 1})), mask=str)
    assert failure is not None and failure.malformed and '"x": 1' in failure.message


def test_messages_are_masked_and_truncated() -> None:
    secret = "sim-demo-key-123456"
    failure = classify(_raise_from(_error(500, f"key {secret} " + "x" * 2000)),
                       mask=lambda text: text.replace(secret, "***"))
    assert failure is not None and secret not in failure.message and "key ***" in failure.message
    assert len(failure.message) < 600 and failure.message.endswith("more chars]")
    assert truncate("short") == "short"


def test_airflow_masker_is_the_default() -> None:
    from airflow.sdk.log import mask_secret

    secret = "not-shaped-like-a-key-7781"
    mask_secret(secret)
    failure = classify(_raise_from(_error(500, f"echo {secret}")))
    assert failure is not None and secret not in failure.message


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after({"Retry-After": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "150"}) == 0.15
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=1445412470.0) == 10.0
    assert parse_retry_after({"retry-after": "soon"}) is None
