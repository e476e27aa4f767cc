"""The in-call retry loop: tenacity waits, retry-after, deadline, and what is never retried."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI
from pydantic_ai.messages import ModelRequest, UserPromptPart
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from erp_agents.exceptions import PermanentAgentError, TransientAgentError
from erp_agents.runtime.failures import Failure, airflow_mask
from erp_agents.runtime.retry import RetryInfo, call_with_retries, max_attempts
from erp_agents.spec.models import RetryPolicy

OK_BODY = {
    "id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}
LOG = logging.getLogger("test.retry")


class FakeTime:
    """A monotonic clock that only moves when the loop sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 3))
        self.now += seconds


def _model(responses: list[httpx.Response | Exception]) -> tuple[OpenAIChatModel, list[httpx.Request]]:
    """A real OpenAI model over a transport that answers ``responses`` in order."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = responses.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    client = AsyncOpenAI(base_url="http://provider.test/v1", api_key="k", max_retries=0,
                         http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)))
    return OpenAIChatModel("gpt-4o-mini", provider=OpenAIProvider(openai_client=client)), seen


def _attempt(model: OpenAIChatModel) -> Callable[[], Awaitable[Any]]:
    async def call() -> Any:
        return await model.request([ModelRequest(parts=[UserPromptPart("hello")])], None, ModelRequestParameters())
    return call


def _err(status: int, headers: dict[str, str] | None = None, message: str = "busy") -> httpx.Response:
    return httpx.Response(status, json={"error": {"message": message, "type": "x", "code": None}}, headers=headers)


def _run(fn: Callable[[], Awaitable[Any]], policy: RetryPolicy, fake: FakeTime, deadline: float | None = None,
         infos: list[RetryInfo] | None = None) -> Any:
    on_retry = None if infos is None else infos.append
    return asyncio.run(call_with_retries(fn, policy, deadline=deadline, log=LOG, on_retry=on_retry, mask=str,
                                         clock=fake.clock, sleep=fake.sleep))


def test_transient_errors_are_retried_with_exponential_waits(caplog: pytest.LogCaptureFixture) -> None:
    model, seen = _model([_err(500), _err(503), httpx.ConnectError("refused"), httpx.Response(200, json=OK_BODY)])
    fake, infos = FakeTime(), []
    policy = RetryPolicy(max_retries=3, base_delay=1, max_delay=60, jitter=False)
    with caplog.at_level(logging.WARNING, "test.retry"):
        response = _run(_attempt(model), policy, fake, infos=infos)
    assert response.parts[0].content == "hi" and len(seen) == 4
    assert fake.sleeps == [1.0, 2.0, 4.0]
    assert [(i.attempt, i.status_code, i.reason) for i in infos] == [
        (1, 500, "HTTP 500"), (2, 503, "HTTP 503"), (3, None, "connection failed")]
    assert "attempt 1/4 failed (HTTP 500: busy); retrying in 1.00 s" in caplog.text


def test_linear_fixed_and_jitter_waits() -> None:
    for strategy, expected in (("linear_backoff", [2.0, 4.0, 6.0]), ("fixed_delay", [2.0, 2.0, 2.0])):
        model, _ = _model([_err(502)] * 3 + [httpx.Response(200, json=OK_BODY)])
        fake = FakeTime()
        _run(_attempt(model), RetryPolicy(max_retries=3, strategy=strategy, base_delay=2, max_delay=5 if strategy ==
                                          "linear_backoff" else 60, jitter=False), fake)
        assert fake.sleeps == [min(e, 5.0) if strategy == "linear_backoff" else e for e in expected]
    model, _ = _model([_err(502)] * 5 + [httpx.Response(200, json=OK_BODY)])
    fake = FakeTime()
    _run(_attempt(model), RetryPolicy(max_retries=5, base_delay=1, max_delay=100, jitter=True), fake)
    assert all(base <= s <= base + 1 for s, base in zip(fake.sleeps, [1, 2, 4, 8, 16]))
    assert len(set(s - base for s, base in zip(fake.sleeps, [1, 2, 4, 8, 16]))) > 1


def test_retry_after_is_honoured_when_longer_and_capped_by_max_delay() -> None:
    model, _ = _model([_err(429, {"retry-after": "5"}), _err(429, {"retry-after-ms": "200"}),
                       _err(429, {"retry-after": "999"}), httpx.Response(200, json=OK_BODY)])
    fake, infos = FakeTime(), []
    _run(_attempt(model), RetryPolicy(max_retries=3, base_delay=1, max_delay=30, jitter=False), fake, infos=infos)
    assert fake.sleeps == [5.0, 2.0, 30.0]
    assert [i.retry_after for i in infos] == [5.0, 0.2, 999.0]


def test_permanent_errors_fail_at_once_with_the_servers_message() -> None:
    model, seen = _model([_err(401, message="Incorrect API key provided"), httpx.Response(200, json=OK_BODY)])
    fake = FakeTime()
    with pytest.raises(PermanentAgentError, match="HTTP 401: Incorrect API key provided") as info:
        _run(_attempt(model), RetryPolicy(max_retries=5), fake)
    assert len(seen) == 1 and fake.sleeps == [] and info.value.__cause__ is not None


def test_exhausted_transient_errors_stay_transient_and_say_so() -> None:
    model, seen = _model([_err(503, message="down")] * 3)
    fake = FakeTime()
    with pytest.raises(TransientAgentError, match=r"gave up after 3 attempt\(s\): HTTP 503: down"):
        _run(_attempt(model), RetryPolicy(max_retries=2, base_delay=0.5, jitter=False), fake)
    assert len(seen) == 3 and fake.sleeps == [0.5, 1.0]


def test_a_body_that_stays_malformed_becomes_permanent() -> None:
    garbage = httpx.Response(200, content=b'{"choices": [ <<', headers={"content-type": "application/json"})
    model, seen = _model([garbage, garbage])
    with pytest.raises(PermanentAgentError, match="malformed response"):
        _run(_attempt(model), RetryPolicy(max_retries=1, base_delay=0, jitter=False), FakeTime())
    assert len(seen) == 2
    model, seen = _model([garbage, httpx.Response(200, json=OK_BODY)])
    assert _run(_attempt(model), RetryPolicy(max_retries=1, base_delay=0), FakeTime()).parts[0].content == "hi"


def test_no_retry_and_zero_retries_mean_one_attempt() -> None:
    policy = RetryPolicy(strategy="no_retry", max_retries=3)
    assert max_attempts(policy) == 1 and max_attempts(RetryPolicy(max_retries=0)) == 1
    assert max_attempts(RetryPolicy(max_retries=4)) == 5
    model, seen = _model([_err(500), httpx.Response(200, json=OK_BODY)])
    with pytest.raises(TransientAgentError, match=r"gave up after 1 attempt"):
        _run(_attempt(model), policy, FakeTime())
    assert len(seen) == 1


def test_the_deadline_stops_a_retry_that_would_end_after_it() -> None:
    model, seen = _model([_err(500), _err(500), _err(500), httpx.Response(200, json=OK_BODY)])
    fake = FakeTime()
    with pytest.raises(TransientAgentError, match=r"stopped after 2 attempt\(s\).*deadline"):
        _run(_attempt(model), RetryPolicy(max_retries=5, base_delay=2, jitter=False), fake, deadline=fake.now + 5)
    assert len(seen) == 2 and fake.sleeps == [2.0]


def test_errors_that_are_not_the_providers_propagate_unchanged() -> None:
    for error in (KeyError("bug"), PermanentAgentError("budget exceeded: spent 1.00 of 1.00")):
        calls = []

        async def fail() -> None:
            calls.append(1)
            raise error

        with pytest.raises(type(error)) as info:
            _run(fail, RetryPolicy(max_retries=3), FakeTime())
        assert info.value is error and calls == [1]


def test_transient_agent_errors_from_the_attempt_are_retried() -> None:
    calls = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TransientAgentError("limiter store unreachable")
        return "ok"

    fake = FakeTime()
    assert _run(flaky, RetryPolicy(max_retries=3, base_delay=1, jitter=False), fake) == "ok"
    assert fake.sleeps == [1.0, 2.0]


def test_real_sleep_is_the_default() -> None:
    model, _ = _model([_err(500), httpx.Response(200, json=OK_BODY)])
    policy = RetryPolicy(max_retries=1, base_delay=0.05, max_delay=0.05, jitter=False)
    airflow_mask("warm up Airflow's masker import")
    started = asyncio.run(_timed(call_with_retries(_attempt(model), policy, deadline=None, log=LOG)))
    assert 0.05 <= started < 2


async def _timed(awaitable: Awaitable[Any]) -> float:
    loop = asyncio.get_running_loop()
    begin = loop.time()
    await awaitable
    return loop.time() - begin


def test_failure_describe() -> None:
    assert Failure(True, "timeout", "").describe() == "timeout"
