"""No API key, shaped like one or not, reaches events, XCom, logs or exception messages, even when
the provider echoes it back (the simulator's echo_key option) in answers and in error bodies."""

from __future__ import annotations

import asyncio
import json

import pytest

from erp_agents.contracts import AgentFailed, load_event
from erp_agents.factory.plan import plan_workflow
from erp_agents.operators.agent import airflow_error
from erp_agents.spec.models import Agent, LLMConfig, RetryPolicy, RetryStrategy, Workflow
from erp_agents.triggers.agent import AgentTrigger
from include.llm_simulator.testing import running_simulator

KEY = "sim-demo-key-123456"  # not sk-shaped: no pattern could be what hides it
RUN = {"schema_version": 1, "dag_id": "wf", "run_id": "r1", "task_id": "finance.a", "params": {}}


@pytest.fixture(scope="module")
def simulator():
    with running_simulator(api_key=KEY, echo_key=True) as sim:
        yield sim


@pytest.fixture
def sim(simulator, monkeypatch):
    simulator.reset()
    monkeypatch.setenv("AIRFLOW_CONN_OPENAI_DEFAULT",
                       json.dumps({"conn_type": "openai", "password": KEY, "host": simulator.openai_base_url}))
    return simulator


def _events() -> list:
    wf = Workflow(name="wf", retry_policy=RetryPolicy(strategy=RetryStrategy.NO_RETRY),
                  agents=[Agent(name="a", module="Finance", llm_config=LLMConfig(model="gpt-4o-mini"),
                                prompt_template="Tell me the weather")])
    invocation = plan_workflow(wf).tasks[0].invocation.to_json()

    async def collect():
        return [e async for e in AgentTrigger(invocation=invocation, end_in_triggerer=False, run=RUN,
                                              upstream_outputs={}).run()]

    return asyncio.run(collect())


def test_the_simulator_really_echoes_the_key(sim):
    """Without this the tests below could not fail."""
    import httpx

    answer = httpx.post(f"{sim.openai_base_url}/chat/completions", headers={"Authorization": f"Bearer {KEY}"},
                        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).json()
    assert KEY in json.dumps(answer)


def test_an_echoed_key_is_masked_in_the_answer_pushed_to_xcom(sim, caplog):
    with caplog.at_level("DEBUG"):
        [event] = _events()
    assert event.payload["status"] == "success", event.payload
    assert "***" in json.dumps(event.payload["result"])
    assert KEY not in json.dumps(event.payload)
    assert KEY not in caplog.text


def test_an_echoed_key_is_masked_in_error_events_and_airflow_exceptions(sim, caplog):
    sim.script(["500"])  # no_retry: the one failed attempt is the run's error
    with caplog.at_level("DEBUG"):
        [event] = _events()
    assert event.payload["status"] == "error"
    assert "***" in event.payload["message"]  # the provider's text carried the key
    assert KEY not in json.dumps(event.payload) and KEY not in caplog.text
    typed = load_event(event.payload)
    assert isinstance(typed, AgentFailed)
    assert KEY not in str(airflow_error(typed, "finance.a"))
