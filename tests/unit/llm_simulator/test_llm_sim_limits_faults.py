"""Rate limits, faults, auth, latency and concurrency against real subprocesses."""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from datetime import datetime, timezone
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from include.llm_simulator.faults import FaultInjector
from include.llm_simulator.testing import running_simulator
from sim_expect import OVERHEAD, SECRET_KEY, tokens

HELLO = [{"role": "user", "content": "hello"}]


def oai_client(sim, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.openai_base_url, api_key=kwargs.pop("api_key", "test-key"), max_retries=0,
                         **kwargs)


def ant_client(sim, **kwargs) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=sim.base_url, api_key=kwargs.pop("api_key", "test-key"), max_retries=0,
                               **kwargs)


def test_rpm_allows_exactly_n_then_429_with_headers(limited) -> None:
    client = oai_client(limited)
    remaining = []
    for _ in range(3):
        raw = client.chat.completions.with_raw_response.create(model="m", messages=HELLO)
        assert raw.headers["x-ratelimit-limit-requests"] == "3"
        assert re.fullmatch(r"\d+(\.\d+)?s|\d+ms|\dm\d+(\.\d+)?s", raw.headers["x-ratelimit-reset-requests"])
        assert raw.headers["x-ratelimit-limit-tokens"] == "1000"
        remaining.append(raw.headers["x-ratelimit-remaining-requests"])
    assert remaining == ["2", "1", "0"]
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="m", messages=HELLO)
    headers = info.value.response.headers
    retry_after, retry_ms = int(headers["retry-after"]), int(headers["retry-after-ms"])
    assert 55 <= retry_after <= 60 and retry_after == math.ceil(retry_ms / 1000)
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert info.value.body["type"] == "requests" and info.value.body["code"] == "rate_limit_exceeded"
    assert [e["status"] for e in limited.requests()] == [200, 200, 200, 429]


def test_rpm_anthropic_headers(limited) -> None:
    client = ant_client(limited)
    seen = []
    for _ in range(3):
        raw = client.messages.with_raw_response.create(model="c", max_tokens=10, messages=HELLO)
        reset = datetime.fromisoformat(raw.headers["anthropic-ratelimit-requests-reset"].replace("Z", "+00:00"))
        assert 0 <= (reset - datetime.now(timezone.utc)).total_seconds() <= 61
        seen.append((raw.headers["anthropic-ratelimit-requests-limit"],
                     raw.headers["anthropic-ratelimit-requests-remaining"]))
        assert "anthropic-ratelimit-tokens-remaining" in raw.headers
    assert seen == [("3", "2"), ("3", "1"), ("3", "0")]
    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.create(model="c", max_tokens=10, messages=HELLO)
    assert 55 <= int(info.value.response.headers["retry-after"]) <= 60
    assert info.value.body["error"]["type"] == "rate_limit_error"


def test_tpm_counts_prompt_plus_max_tokens(limited) -> None:
    client = oai_client(limited)
    cost = OVERHEAD + tokens("hello") + 400
    first = client.chat.completions.with_raw_response.create(model="m", messages=HELLO, max_tokens=400)
    second = client.chat.completions.with_raw_response.create(model="m", messages=HELLO, max_tokens=400)
    assert first.headers["x-ratelimit-remaining-tokens"] == str(1000 - cost)
    assert second.headers["x-ratelimit-remaining-tokens"] == str(1000 - 2 * cost)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="m", messages=HELLO, max_tokens=400)
    assert info.value.body["type"] == "tokens"
    small = client.chat.completions.with_raw_response.create(model="m", messages=HELLO, max_tokens=1000 - 2 * cost - 4)
    assert small.headers["x-ratelimit-remaining-tokens"] == "0"


def test_reset_clears_rate_window(limited) -> None:
    client = oai_client(limited)
    for _ in range(3):
        client.chat.completions.create(model="m", messages=HELLO)
    limited.reset()
    assert limited.requests() == []
    client.chat.completions.create(model="m", messages=HELLO)


OPENAI_FAULTS = [
    ("500", openai.InternalServerError, 500),
    ("503", openai.InternalServerError, 503),
    ("429", openai.RateLimitError, 429),
    ("400", openai.BadRequestError, 400),
    ("401", openai.AuthenticationError, 401),
    ("malformed", json.JSONDecodeError, 200),
    ("timeout", openai.APITimeoutError, None),
    ("drop", openai.APIConnectionError, None),
]


@pytest.mark.parametrize(("kind", "error", "status"), OPENAI_FAULTS)
def test_scripted_fault_openai(sim, wait_for_requests, kind, error, status) -> None:
    client = oai_client(sim, timeout=0.5)
    sim.script([kind, "ok"])
    with pytest.raises(error) as info:
        client.chat.completions.create(model="m", messages=HELLO)
    if kind == "drop":
        assert not isinstance(info.value, openai.APITimeoutError)
    if status and status != 200:
        assert info.value.status_code == status
        assert set(info.value.response.json()["error"]) == {"message", "type", "param", "code"}
    assert client.chat.completions.create(model="m", messages=HELLO).choices[0].finish_reason == "stop"
    entries = sorted(wait_for_requests(sim, 2), key=lambda e: e["id"])  # the log is in completion order
    assert [(e["fault"], e["status"]) for e in entries] == [(kind, status), (None, 200)]


ANTHROPIC_FAULTS = [
    ("500", anthropic.InternalServerError, 500),
    ("529", anthropic.OverloadedError, 529),
    ("429", anthropic.RateLimitError, 429),
    ("401", anthropic.AuthenticationError, 401),
    ("malformed", json.JSONDecodeError, 200),
    ("timeout", anthropic.APITimeoutError, None),
    ("drop", anthropic.APIConnectionError, None),
]


@pytest.mark.parametrize(("kind", "error", "status"), ANTHROPIC_FAULTS)
def test_scripted_fault_anthropic(sim, wait_for_requests, kind, error, status) -> None:
    client = ant_client(sim, timeout=0.5)
    sim.script([kind])
    with pytest.raises(error) as info:
        client.messages.create(model="c", max_tokens=10, messages=HELLO)
    if kind == "drop":
        assert not isinstance(info.value, anthropic.APITimeoutError)
    if status and status != 200:
        assert info.value.status_code == status
        assert info.value.response.json()["type"] == "error"
    assert client.messages.create(model="c", max_tokens=10, messages=HELLO).stop_reason == "end_turn"
    entries = sorted(wait_for_requests(sim, 2), key=lambda e: e["id"])  # the log is in completion order
    assert [(e["fault"], e["status"]) for e in entries] == [(kind, status), (None, 200)]


def test_script_scoped_by_model_and_fifo(sim) -> None:
    client = oai_client(sim)
    sim.script(["500", "503"], model="gpt-a")
    assert client.chat.completions.create(model="gpt-b", messages=HELLO).choices
    with pytest.raises(openai.InternalServerError) as first:
        client.chat.completions.create(model="gpt-a", messages=HELLO)
    with pytest.raises(openai.InternalServerError) as second:
        client.chat.completions.create(model="gpt-a", messages=HELLO)
    assert (first.value.status_code, second.value.status_code) == (500, 503)
    assert client.chat.completions.create(model="gpt-a", messages=HELLO).choices
    stats = sim.stats()
    assert stats["by_status"] == {"200": 2, "500": 1, "503": 1}
    assert stats["by_model"] == {"gpt-a": 3, "gpt-b": 1}
    assert stats["in_flight"] == 0


def test_random_faults_are_seeded_and_latency_jitter_applies() -> None:
    with running_simulator(fault_rate=0.5, fault_kinds=["500", "503"], seed=11, latency=0.05,
                           latency_jitter=0.04) as sim:
        client = oai_client(sim)
        statuses = []
        for _ in range(20):
            try:
                client.chat.completions.create(model="m", messages=HELLO)
                statuses.append(200)
            except openai.InternalServerError as exc:
                statuses.append(exc.status_code)
        injector = FaultInjector(0.5, ["500", "503"], seed=11)
        assert statuses == [int(injector.next_fault("m") or 200) for _ in range(20)]
        assert {200, 500, 503} == set(statuses)
        durations = [e["ts_end"] - e["ts_start"] for e in sim.requests()]
        assert min(durations) >= 0.0099 and max(durations) < 0.09 + 0.1


def test_wrong_key_is_401_and_never_echoed_or_logged(secured) -> None:
    wrong = "sk-wrong-KEY-987654"
    with pytest.raises(openai.AuthenticationError) as info:
        oai_client(secured, api_key=wrong).chat.completions.create(model="m", messages=HELLO)
    assert info.value.body["message"] == "invalid api key"
    assert wrong not in info.value.response.text
    with pytest.raises(anthropic.AuthenticationError) as ainfo:
        ant_client(secured, api_key=wrong).messages.create(model="c", max_tokens=5, messages=HELLO)
    assert wrong not in ainfo.value.response.text
    assert oai_client(secured, api_key=SECRET_KEY).chat.completions.create(model="m", messages=HELLO).choices
    assert ant_client(secured, api_key=SECRET_KEY).messages.create(model="c", max_tokens=5, messages=HELLO).content
    log_text = Path(secured.log_path).read_text()
    assert wrong not in log_text and SECRET_KEY not in log_text
    assert [e["status"] for e in secured.requests()] == [401, 401, 200, 200]


def test_latency_header_overrides_per_request(sim) -> None:
    client = oai_client(sim)
    start = time.perf_counter()
    client.chat.completions.create(model="m", messages=HELLO, extra_headers={"x-sim-latency": "0.5"})
    elapsed = time.perf_counter() - start
    assert 0.5 <= elapsed < 1.5
    (entry,) = sim.requests()
    assert entry["ts_end"] - entry["ts_start"] >= 0.5
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="m", messages=HELLO, extra_headers={"x-sim-latency": "soon"})


async def _burst(sim, count: int, clients: int) -> tuple[float, list[str]]:
    pool = [openai.AsyncOpenAI(base_url=sim.openai_base_url, api_key="test-key", max_retries=0, timeout=30)
            for _ in range(clients)]
    start = time.perf_counter()
    responses = await asyncio.gather(*[
        pool[i % clients].chat.completions.create(model="m", messages=[{"role": "user", "content": f"q{i}"}],
                                                  extra_headers={"x-sim-latency": "1"})
        for i in range(count)
    ])
    elapsed = time.perf_counter() - start
    for client in pool:
        await client.close()
    return elapsed, [r.choices[0].message.content for r in responses]


def test_200_concurrent_requests_wait_in_parallel(sim) -> None:
    elapsed, contents = asyncio.run(_burst(sim, 200, 10))
    assert elapsed < 4.0
    assert [c.endswith(f"Reviewed: q{i}") for i, c in enumerate(contents)] == [True] * 200
    entries = sim.requests()
    assert len(entries) == 200 and {e["status"] for e in entries} == {200}
    assert min(e["ts_end"] - e["ts_start"] for e in entries) >= 1.0
    assert sim.stats()["peak_in_flight"] == 200


def test_500_concurrent_requests_are_all_in_flight_together(sim) -> None:
    elapsed, contents = asyncio.run(_burst(sim, 500, 20))
    assert len(contents) == 500
    entries = sim.requests()
    assert {e["status"] for e in entries} == {200}
    assert max(e["ts_end"] for e in entries) - min(e["ts_start"] for e in entries) < 3.0
    assert sim.stats()["peak_in_flight"] == 500


def test_startup_failure_reports_server_output() -> None:
    with pytest.raises(RuntimeError, match="rpm and tpm must be >= 0"):
        with running_simulator(rpm=-1, startup_timeout=10):
            pass


def test_models_endpoint_requires_key(sim) -> None:
    assert httpx.get(sim.openai_base_url + "/models").status_code == 401
    listed = httpx.get(sim.base_url + "/v1/models", headers={"x-api-key": "k", "anthropic-version": "2023-06-01"})
    assert listed.json()["data"][0]["type"] == "model"
