"""Per-key limits, short windows, concurrency, header faults and key echo, against real subprocesses."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from include.llm_simulator.__main__ import settings_from_args
from include.llm_simulator.quota import KeyedLimits
from include.llm_simulator.testing import running_simulator

HELLO = [{"role": "user", "content": "hello"}]
KEY_A, KEY_B = "key-alpha-000111", "key-bravo-222333"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _post(sim, key: str, headers: dict[str, str] | None = None, timeout: float = 10.0) -> httpx.Response:
    return httpx.post(sim.openai_base_url + "/chat/completions", timeout=timeout,
                      headers={"authorization": f"Bearer {key}", **(headers or {})},
                      json={"model": "m", "messages": HELLO, "max_tokens": 10})


@pytest.fixture(scope="module")
def keyed():
    with running_simulator(rpm=2, tpm=10_000, window_seconds=1.0, max_concurrent=2) as sim:
        yield sim


@pytest.fixture(scope="module")
def echoing():
    with running_simulator(echo_key=True) as sim:
        yield sim


def test_each_key_has_its_own_exact_window(keyed) -> None:
    keyed.reset()
    time.sleep(1.0)  # windows of earlier tests in this module have emptied
    assert [_post(keyed, KEY_A).status_code for _ in range(3)] == [200, 200, 429]
    assert [_post(keyed, KEY_B).status_code for _ in range(2)] == [200, 200]
    rejected = _post(keyed, KEY_A)
    assert rejected.status_code == 429 and 1 <= int(rejected.headers["retry-after"]) <= 1
    assert 0 < int(rejected.headers["retry-after-ms"]) <= 1000
    assert rejected.headers["x-ratelimit-limit-requests"] == "2"
    assert rejected.headers["x-ratelimit-remaining-requests"] == "0"
    time.sleep(int(rejected.headers["retry-after-ms"]) / 1000 + 0.05)
    assert _post(keyed, KEY_A).status_code == 200
    entries = sorted(keyed.requests(), key=lambda e: e["id"])
    assert [(e["key_hash"], e["status"], e["admitted"], e["limited_by"]) for e in entries] == [
        (_hash(KEY_A), 200, True, None), (_hash(KEY_A), 200, True, None), (_hash(KEY_A), 429, False, "requests"),
        (_hash(KEY_B), 200, True, None), (_hash(KEY_B), 200, True, None), (_hash(KEY_A), 429, False, "requests"),
        (_hash(KEY_A), 200, True, None)]
    assert all(e["tokens_counted"] > 10 if e["admitted"] else e["tokens_counted"] == 0 for e in entries)
    assert all(e["ts_start"] <= e["ts_end"] for e in entries)
    text = Path(keyed.log_path).read_text()
    assert KEY_A not in text and KEY_B not in text and _hash(KEY_A) in text


def test_concurrency_limit_per_key(keyed) -> None:
    keyed.reset()
    time.sleep(1.0)

    async def burst() -> list[tuple[str, int]]:
        async with httpx.AsyncClient(timeout=10) as client:
            async def one(key: str) -> tuple[str, int]:
                response = await client.post(
                    keyed.openai_base_url + "/chat/completions",
                    headers={"authorization": f"Bearer {key}", "x-sim-latency": "0.6"},
                    json={"model": "m", "messages": HELLO})
                return key, response.status_code
            return await asyncio.gather(*(one(k) for k in (KEY_A, KEY_A, KEY_A, KEY_B)))

    results = asyncio.run(burst())
    assert sorted(s for k, s in results if k == KEY_A) == [200, 200, 429]
    assert [s for k, s in results if k == KEY_B] == [200]
    concurrency = [e for e in keyed.requests() if e["limited_by"] == "concurrency"]
    assert [e["key_hash"] for e in concurrency] == [_hash(KEY_A)]
    stats = keyed.stats()
    assert stats["peak_in_flight_by_key"][_hash(KEY_A)] == 2


@pytest.mark.parametrize(("header", "status", "error_type"), [
    ("503", 503, "api_error"), ("504", 504, "api_error"), ("overloaded", 529, "overloaded_error"),
    ("429", 429, "rate_limit_error"), ("502", 502, "api_error")])
def test_fault_header_anthropic(sim, header: str, status: int, error_type: str) -> None:
    client = anthropic.Anthropic(base_url=sim.base_url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as info:
        client.messages.create(model="c", max_tokens=10, messages=HELLO, extra_headers={"x-sim-fault": header})
    assert info.value.status_code == status and info.value.body["error"]["type"] == error_type
    if status == 429:
        assert int(info.value.response.headers["retry-after"]) >= 1
    assert client.messages.create(model="c", max_tokens=10, messages=HELLO).stop_reason == "end_turn"
    entries = sorted(sim.requests(), key=lambda e: e["id"])  # the log is in completion order
    assert [(e["fault"], e["status"]) for e in entries] == [(header, status), (None, 200)]


def test_fault_header_special_kinds(sim) -> None:
    client = openai.OpenAI(base_url=sim.openai_base_url, api_key="k", max_retries=0, timeout=0.5)
    for kind, error in (("malformed", json.JSONDecodeError), ("drop", openai.APIConnectionError),
                        ("timeout", openai.APITimeoutError)):
        with pytest.raises(error):
            client.chat.completions.create(model="m", messages=HELLO, extra_headers={"x-sim-fault": kind})


def test_fault_rate_header_is_a_share_of_requests(sim) -> None:
    statuses = [_post(sim, "k", {"x-sim-fault-rate": "0.3", "x-sim-fault-kinds": "500,503"}).status_code
                for _ in range(60)]
    faults = sum(s != 200 for s in statuses)
    assert set(statuses) <= {200, 500, 503} and 6 <= faults <= 32
    assert all(_post(sim, "k", {"x-sim-fault-rate": "0"}).status_code == 200 for _ in range(5))
    assert _post(sim, "k", {"x-sim-fault-rate": "1", "x-sim-fault-kinds": "502"}).status_code == 502


@pytest.mark.parametrize("headers", [{"x-sim-fault": "418"}, {"x-sim-fault-rate": "2"},
                                     {"x-sim-fault-rate": "x"}, {"x-sim-fault-rate": "1", "x-sim-fault-kinds": "zap"}])
def test_bad_fault_headers_are_400(sim, headers: dict[str, str]) -> None:
    response = _post(sim, "k", headers)
    message = response.json()["error"]["message"]
    assert response.status_code == 400 and ("x-sim-fault" in message or "unknown fault kind" in message)


def test_echo_key_in_answers_and_errors_but_not_in_the_log(echoing) -> None:
    echoing.reset()
    answer = openai.OpenAI(base_url=echoing.openai_base_url, api_key=KEY_A, max_retries=0).chat.completions.create(
        model="m", messages=HELLO)
    assert KEY_A in answer.choices[0].message.content
    claude = anthropic.Anthropic(base_url=echoing.base_url, api_key=KEY_B, max_retries=0)
    assert KEY_B in claude.messages.create(model="c", max_tokens=20, messages=HELLO).content[0].text
    with pytest.raises(anthropic.InternalServerError) as info:
        claude.messages.create(model="c", max_tokens=20, messages=HELLO, extra_headers={"x-sim-fault": "500"})
    assert KEY_B in info.value.body["error"]["message"]
    assert KEY_A in _post(echoing, KEY_A, {"x-sim-fault": "429"}).json()["error"]["message"]
    logged = Path(echoing.log_path).read_text() + json.dumps(echoing.requests())
    assert KEY_A not in logged and KEY_B not in logged and f"<key {_hash(KEY_A)}>" in logged


def test_without_echo_the_key_is_never_sent_back(sim) -> None:
    body = _post(sim, KEY_A).text + _post(sim, KEY_A, {"x-sim-fault": "500"}).text
    assert KEY_A not in body


def test_cli_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from_args(["--window-seconds", "2.5", "--max-concurrent", "4", "--echo-key"])
    assert (settings.window_seconds, settings.max_concurrent, settings.echo_key) == (2.5, 4, True)
    assert settings_from_args([]).echo_key is False and settings_from_args([]).window_seconds == 60
    monkeypatch.setenv("LLM_SIM_ECHO_KEY", "1")
    monkeypatch.setenv("LLM_SIM_MAX_CONCURRENT", "3")
    settings = settings_from_args([])
    assert settings.echo_key is True and settings.max_concurrent == 3
    assert settings_from_args(["--no-echo-key"]).echo_key is False


def test_keyed_limits_window_math_with_a_fake_clock() -> None:
    now = [0.0]
    limits = KeyedLimits(rpm=0, tpm=100, window_seconds=10, clock=lambda: now[0])

    async def scenario() -> None:
        assert (await limits.acquire("a", 60)).allowed
        denied = await limits.acquire("a", 50)
        assert not denied.allowed and denied.limited_by == "tokens" and denied.retry_after == pytest.approx(10)
        assert (await limits.acquire("b", 100)).allowed
        now[0] = 9.999
        assert not (await limits.acquire("a", 50)).allowed
        now[0] = 10.0
        assert (await limits.acquire("a", 100)).allowed
        assert await limits.enter("a") and await limits.enter("a")
        await limits.leave("a")
        assert limits.peaks() == {"a": 2, "b": 0}

    asyncio.run(scenario())
    one = KeyedLimits(max_concurrent=1)
    assert asyncio.run(one.enter("a")) and not asyncio.run(one.enter("a")) and asyncio.run(one.enter("b"))
