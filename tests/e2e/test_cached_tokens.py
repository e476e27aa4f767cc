"""Cached prompt tokens, from the simulator's usage to the agent's cost record, through the real trigger path.

An agent with a tool round runs through ``dag.test()`` (the real trigger, inline) against a simulator whose
``cache_min_tokens`` is low enough for its second round to hit the cache of the first. The cost record XCom must
carry the cached tokens the simulator's log reports, priced by genai-prices at the cached rate.

* OpenAI (chat completions and the Responses API) caches automatically: nothing to switch on.
* Anthropic caches only where the request marks ``cache_control``: the agent sets ``llm_config.prompt_cache``,
  which becomes pydantic-ai's unified ``cache`` setting.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest

from erp_agents.costs.record import COST_XCOM_KEY
from include.llm_simulator.testing import SimulatorHandle, running_simulator
from tests.e2e.conftest import SIM_KEY
from tests.e2e.helpers import expected_cost, spec_in_test_bundle, xcoms

CACHE_MIN_TOKENS = 256
TASK = "hr.payroll_export"


# About 400 simulated tokens: a prompt prefix long enough to be worth caching.
SYSTEM_PROMPT = " ".join(f"Rule {i}: quote every amount exactly as the payroll register states it." for i in range(30))

WORKFLOW = """
kind: Workflow
version: 1
name: {name}
module: HR
params: {{period: "2026-10"}}
agents:
  - name: payroll_export
    module: HR
    llm_config: {{model: {model}, provider: {provider}, max_tokens: 700, prompt_cache: {prompt_cache}}}
    system_prompt: {system}
    prompt_template: |
      Use get_payroll_summary({{"period": "{{{{ params.period }}}}"}}) for the payroll register.
    tools: [hr.get_payroll_summary]
"""

GENAI_PROVIDER = {"openai": "openai", "responses": "openai", "anthropic": "anthropic"}


@pytest.fixture(scope="module")
def cache_simulator() -> Iterator[SimulatorHandle]:
    with running_simulator(api_key=SIM_KEY, cache_min_tokens=CACHE_MIN_TOKENS) as sim:
        yield sim


def _connect(monkeypatch: pytest.MonkeyPatch, sim: SimulatorHandle) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_OPENAI_DEFAULT",
                       json.dumps({"conn_type": "openai", "password": SIM_KEY, "host": sim.openai_base_url}))
    monkeypatch.setenv("AIRFLOW_CONN_ANTHROPIC_DEFAULT",
                       json.dumps({"conn_type": "anthropic", "password": SIM_KEY, "host": sim.base_url}))


def _run_workflow(sim: SimulatorHandle, name: str, model: str, provider: str, prompt_cache: bool = False) -> dict[str, Any]:
    """Run a one-agent workflow; its DAG's spec is removed afterwards. Returns the log and the cost record."""
    sim.reset()
    spec = WORKFLOW.format(name=name, model=model, provider=provider, system=json.dumps(SYSTEM_PROMPT),
                           prompt_cache=json.dumps(prompt_cache))
    with spec_in_test_bundle(name, spec) as dag:
        run = dag.test()
    assert run.state == "success"
    return {"requests": sim.requests(), "record": xcoms(dag.dag_id, run.run_id, COST_XCOM_KEY)[TASK]}




def _assert_record_carries_the_logged_cache_reads(result: dict[str, Any]) -> None:
    requests, record = result["requests"], result["record"]
    assert [r["status"] for r in requests] == [200, 200]  # the tool round, then the answer
    tool_round, answer = requests
    assert tool_round["usage"].get("cache_read_tokens", 0) == 0  # nothing was cached before the first round
    assert answer["usage"]["cache_read_tokens"] > 0
    assert record["status"] == "success" and record["calls"] == 2 and record["tool_calls"] == 1
    assert record["estimated_usage_calls"] == 0
    assert [(c["input_tokens"], c["output_tokens"], c["cache_read_tokens"]) for c in record["requests"]] == [
        (r["usage"]["input_tokens"], r["usage"]["output_tokens"], r["usage"].get("cache_read_tokens", 0))
        for r in requests]
    assert record["cache_read_tokens"] == sum(r["usage"].get("cache_read_tokens", 0) for r in requests) > 0
    assert record["input_tokens"] == sum(r["usage"]["input_tokens"] for r in requests)


# --- OpenAI: automatic caching ------------------------------------------------------------------------------


@pytest.mark.parametrize(("provider", "path"), [("openai", "/v1/chat/completions"), ("responses", "/v1/responses")])
def test_openai_tool_round_reads_the_cache_and_costs_less(airflow_db, cache_simulator, monkeypatch, provider, path):
    _connect(monkeypatch, cache_simulator)
    result = _run_workflow(cache_simulator, f"cached_tokens_{provider}", "gpt-4o-mini", provider)
    requests, record = result["requests"], result["record"]
    assert {r["path"] for r in requests} == {path}
    _assert_record_carries_the_logged_cache_reads(result)
    tool_round, answer = requests
    # The whole first prompt is a prefix of the second; OpenAI reports it in 128-token steps.
    assert answer["usage"]["cache_read_tokens"] == tool_round["usage"]["input_tokens"] // 128 * 128
    if provider == "openai":
        details = answer["response"]["usage"]["prompt_tokens_details"]
    else:
        details = answer["response"]["usage"]["input_tokens_details"]
    assert details["cached_tokens"] == answer["usage"]["cache_read_tokens"]

    assert math.isclose(record["cost_usd"], float(expected_cost(requests, GENAI_PROVIDER[provider])), rel_tol=1e-9)
    assert record["cost_usd"] < float(expected_cost(requests, GENAI_PROVIDER[provider], cache=False))


# --- Anthropic: explicit caching ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def anthropic_run(airflow_db, cache_simulator) -> dict[str, Any]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        _connect(monkeypatch, cache_simulator)
        return _run_workflow(cache_simulator, "cached_tokens_anthropic", "claude-sonnet-4-5", "anthropic",
                             prompt_cache=True)


def test_anthropic_cache_control_tool_round_reads_the_cache(anthropic_run):
    requests, record = anthropic_run["requests"], anthropic_run["record"]
    assert {r["path"] for r in requests} == {"/v1/messages"}
    tool_round, answer = requests
    # pydantic-ai marked the instructions and the tools, and asked for automatic caching of the conversation.
    body = tool_round["request"]
    assert body["cache_control"]["type"] == "ephemeral"
    assert body["system"][-1]["cache_control"]["type"] == "ephemeral"
    assert body["tools"][-1]["cache_control"]["type"] == "ephemeral"
    _assert_record_carries_the_logged_cache_reads(anthropic_run)
    # The first round wrote its whole prompt; the second read it back and wrote only its new turn.
    assert tool_round["usage"]["cache_write_tokens"] == tool_round["usage"]["input_tokens"]
    assert answer["usage"]["cache_read_tokens"] == tool_round["usage"]["input_tokens"]
    wire = answer["response"]["usage"]
    assert wire["cache_read_input_tokens"] == answer["usage"]["cache_read_tokens"]
    assert wire["input_tokens"] + wire["cache_read_input_tokens"] + wire["cache_creation_input_tokens"] == \
        answer["usage"]["input_tokens"]

    # The cached reads got the cache-read rate: the run cost less than the same tokens uncached.
    assert record["cost_usd"] < float(expected_cost(requests, "anthropic", cache=False))


def test_anthropic_cost_is_the_price_of_reads_and_writes(anthropic_run):
    requests, record = anthropic_run["requests"], anthropic_run["record"]
    full = expected_cost(requests, "anthropic")
    assert full < expected_cost(requests, "anthropic", cache=False)  # caching pays off even with the writes' premium
    assert math.isclose(record["cost_usd"], float(full), rel_tol=1e-9)
