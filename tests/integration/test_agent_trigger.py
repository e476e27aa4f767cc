"""AgentTrigger.run() against the simulator over real HTTP: events, XCom shape, failures, secrets."""

from __future__ import annotations

import asyncio
import json

import pytest
from airflow.triggers.base import TaskSuccessEvent

from erp_agents.factory.plan import plan_workflow
from erp_agents.spec.models import Agent, LLMConfig, RetryPolicy, RetryStrategy, Workflow
from erp_agents.triggers.agent import AgentTrigger
from erp_agents.xcom import COST_XCOM_KEY, agent_output
from include.llm_simulator.testing import running_simulator

KEY = "sk-unit-test-key-abcdef0123456789"


@pytest.fixture(scope="module")
def simulator():
    with running_simulator(api_key=KEY) as sim:
        yield sim


@pytest.fixture
def sim(simulator, monkeypatch):
    simulator.reset()
    monkeypatch.setenv("AIRFLOW_CONN_OPENAI_DEFAULT", json.dumps({"conn_type": "openai", "password": KEY, "host": simulator.openai_base_url}))
    return simulator


FAST_RETRIES = RetryPolicy(max_retries=2, strategy=RetryStrategy.FIXED_DELAY, base_delay=0.05, max_delay=0.05,
                           jitter=False)


def _payload(prompt: str = "Summarise {{ agents.loader.output }} for {{ params.period }}", model: str = "gpt-4o-mini",
             **agent_kw) -> str:
    wf = Workflow(
        name="wf",
        retry_policy=FAST_RETRIES,
        agents=[
            Agent(name="loader", module="Finance", llm_config=LLMConfig(model="gpt-4o-mini"), prompt_template="load"),
            Agent(name="writer", module="Finance", llm_config=LLMConfig(model=model, max_tokens=200),
                  prompt_template=prompt, dependencies=["loader"], **agent_kw),
        ],
    )
    return next(t for t in plan_workflow(wf).tasks if t.agent.name == "writer").invocation.to_json()


RUN = {"schema_version": 1, "dag_id": "wf", "run_id": "r1", "task_id": "finance.writer",
       "params": {"period": "2026-10"}, "ds": "2026-10-31"}


def _events(trigger: AgentTrigger) -> list:
    async def collect():
        return [event async for event in trigger.run()]

    return asyncio.run(collect())


def test_serialize_mirrors_init():
    trigger = AgentTrigger(invocation=_payload(), end_in_triggerer=False, run=RUN, upstream_outputs={"loader": "x"})
    classpath, kwargs = trigger.serialize()
    assert classpath == "erp_agents.triggers.agent.AgentTrigger"
    assert AgentTrigger(**kwargs).serialize() == (classpath, kwargs)
    json.dumps(kwargs)  # JSON-able primitives only


def test_worker_path_returns_output_and_cost(sim):
    trigger = AgentTrigger(invocation=_payload(), end_in_triggerer=False, run=RUN, upstream_outputs={"loader": "LEDGER-OK"})
    [event] = _events(trigger)
    [request] = sim.requests()
    sent = request["request"]["messages"][-1]["content"]
    assert sent == "Summarise LEDGER-OK for 2026-10"
    assert request["request"]["max_completion_tokens"] == 200
    assert event.payload["status"] == "success"
    assert event.payload["result"] == {
        "schema_version": 1, "output": request["response"]["choices"][0]["message"]["content"], "agent": "writer",
        "model": "gpt-4o-mini",
    }
    record = event.payload["cost_record"]
    assert (record["input_tokens"], record["output_tokens"], record["calls"]) == (
        request["usage"]["input_tokens"], request["usage"]["output_tokens"], 1)
    assert record["cost_usd"] == pytest.approx((0.15 * record["input_tokens"] + 0.6 * record["output_tokens"]) / 1e6)


def test_triggerer_path_ends_the_task_with_xcoms(sim):
    trigger = AgentTrigger(invocation=_payload(), end_in_triggerer=True, run=RUN, upstream_outputs={"loader": "x"})
    [event] = _events(trigger)
    assert isinstance(event, TaskSuccessEvent)
    assert set(event.xcoms) == {"return_value", "cost_record"}
    assert agent_output(json.dumps(event.xcoms["return_value"])) == event.xcoms["return_value"]["output"]


def test_upstream_output_is_never_evaluated_as_a_template(sim):
    trigger = AgentTrigger(invocation=_payload(), end_in_triggerer=False, run=RUN,
                           upstream_outputs={"loader": "{{ 7 * 6 }} {% for x in range(3) %}!{% endfor %}"})
    [event] = _events(trigger)
    assert event.payload["status"] == "success"
    assert sim.requests()[0]["request"]["messages"][-1]["content"] == (
        "Summarise {{ 7 * 6 }} {% for x in range(3) %}!{% endfor %} for 2026-10"
    )


def test_sandbox_blocks_unsafe_templates(sim):
    payload = _payload(prompt="{{ params.__class__.__mro__[1].__subclasses__() }}")
    [event] = _events(AgentTrigger(invocation=payload, end_in_triggerer=False, run=RUN, upstream_outputs={"loader": ""}))
    assert event.payload["status"] == "error" and event.payload["error_type"] == "PermanentAgentError"
    assert "prompt_template of agent 'writer'" in event.payload["message"]
    assert sim.requests() == []


@pytest.mark.parametrize(("fault", "error_type", "text"), [
    ("500", "TransientAgentError", "HTTP 500"), ("429", "TransientAgentError", "HTTP 429"),
    ("drop", "TransientAgentError", "onnection"),
])
def test_transient_failures_are_retried_in_the_call_then_reported_with_the_servers_message(sim, fault, error_type,
                                                                                           text):
    sim.script([fault])  # one blip: the retry inside the call answers, no task retry needed
    [event] = _events(AgentTrigger(invocation=_payload(), end_in_triggerer=False, run=RUN, upstream_outputs={"loader": ""}))
    assert event.payload["status"] == "success"
    assert (event.payload["cost_record"]["failed_calls"], event.payload["cost_record"]["retries"]) == (1, 1)
    sim.reset()
    sim.script([fault] * 3)  # more than the policy's 2 retries: the task fails as retryable
    [event] = _events(AgentTrigger(invocation=_payload(), end_in_triggerer=True, run=RUN, upstream_outputs={"loader": ""}))
    assert event.payload["status"] == "error"
    assert event.payload["error_type"] == error_type
    assert text in event.payload["message"] and "gave up after 3 attempt(s)" in event.payload["message"]
    assert event.payload["cost_record"]["failed_calls"] == 3


def test_a_permanent_failure_is_not_retried(sim):
    sim.script(["400"])
    [event] = _events(AgentTrigger(invocation=_payload(), end_in_triggerer=True, run=RUN, upstream_outputs={"loader": ""}))
    assert (event.payload["error_type"], event.payload["cost_record"]["failed_calls"]) == ("PermanentAgentError", 1)
    assert "HTTP 400" in event.payload["message"] and len(sim.requests()) == 1


def test_wrong_key_fails_permanently_and_never_shows_the_key(sim, monkeypatch):
    wrong = "sk-wrong-key-zyxwvu9876543210"
    monkeypatch.setenv("AIRFLOW_CONN_OPENAI_DEFAULT", json.dumps({"conn_type": "openai", "password": wrong, "host": sim.openai_base_url}))
    [event] = _events(AgentTrigger(invocation=_payload(), end_in_triggerer=True, run=RUN, upstream_outputs={"loader": ""}))
    assert event.payload["error_type"] == "PermanentAgentError"
    assert "HTTP 401" in event.payload["message"]
    assert wrong not in json.dumps(event.payload) and KEY not in json.dumps(event.payload)


def test_unpriced_model_is_refused_before_any_call(sim):
    payload = _payload(model="house-model-7b")
    [event] = _events(AgentTrigger(invocation=payload, end_in_triggerer=True, run=RUN, upstream_outputs={"loader": ""}))
    assert event.payload["error_type"] == "UnknownPriceError"
    assert "no price for model 'house-model-7b'" in event.payload["message"]
    assert sim.requests() == []


def test_api_key_never_reaches_logs_events_or_prompts(sim, caplog):
    payload = _payload(prompt="Summarise {{ agents.loader.output }} {{ params }}")
    with caplog.at_level("DEBUG"):
        events = _events(AgentTrigger(invocation=payload, end_in_triggerer=True, run=RUN, upstream_outputs={"loader": "x"}))
        sim.script(["401"])
        events += _events(AgentTrigger(invocation=payload, end_in_triggerer=True, run=RUN, upstream_outputs={"loader": "x"}))
    assert KEY not in caplog.text
    for event in events:
        assert KEY not in json.dumps(event.model_dump(), default=str)
    assert all(KEY not in json.dumps(r) for r in sim.requests())
    assert "HTTP 401" in events[1].payload["message"]


def test_prompts_cannot_reach_connections_or_variables(sim):
    payload = _payload(prompt="{{ conn.openai_default.password }}")
    [event] = _events(AgentTrigger(invocation=payload, end_in_triggerer=True, run=RUN, upstream_outputs={"loader": ""}))
    assert event.payload["status"] == "error" and "'conn' is undefined" in event.payload["message"]
    assert sim.requests() == []


@pytest.mark.parametrize(
    ("fault", "task_retries", "ends_here"),
    [
        ("500", 1, True),   # retryable: Airflow retries a failed task itself, no worker needed
        ("400", 0, True),   # permanent, no retries to avoid: failed is final either way
        ("400", 1, False),  # permanent with a retry left: only AirflowFailException on a worker stops it
    ],
)
def test_where_a_failed_agent_ends(sim, fault, task_retries, ends_here):
    from airflow.triggers.base import TaskFailedEvent

    sim.script([fault] * 3)
    [event] = _events(AgentTrigger(invocation=_payload(), end_in_triggerer=True, run=RUN, upstream_outputs={"loader": ""},
                                   task_retries=task_retries, end_failures_in_triggerer=True))
    assert isinstance(event, TaskFailedEvent) is ends_here
    if ends_here:
        record = event.xcoms[COST_XCOM_KEY]
        assert record["status"] == "failed" and record["failed_calls"] >= 1
    else:
        assert event.payload["error_type"] == "PermanentAgentError"


def test_a_permanent_failure_ends_in_the_triggerer_where_its_supervisor_ends_it_without_retry(sim, monkeypatch):
    from airflow.triggers.base import TaskFailedEvent

    from erp_agents.stack import triggerer

    monkeypatch.setattr(triggerer, "ENDS_PERMANENT_FAILURES", True)
    sim.script(["400"])
    [event] = _events(AgentTrigger(invocation=_payload(), end_in_triggerer=True, run=RUN, upstream_outputs={"loader": ""},
                                   task_retries=1, end_failures_in_triggerer=True))
    assert isinstance(event, TaskFailedEvent)
    assert event.xcoms[COST_XCOM_KEY]["error_type"] == "PermanentAgentError"


def test_failures_resume_on_a_worker_when_the_task_has_failure_callbacks(sim):
    sim.script(["500"] * 3)
    [event] = _events(AgentTrigger(invocation=_payload(), end_in_triggerer=True, run=RUN, upstream_outputs={"loader": ""},
                                   task_retries=1, end_failures_in_triggerer=False))
    assert event.payload["status"] == "error"
