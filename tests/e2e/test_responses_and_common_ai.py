"""An ERP workflow on the OpenAI Responses API, and on common-ai's ``pydanticai`` connection type.

Both run through ``dag.test()`` (the real trigger, inline) against the simulator over HTTP. The simulator's
log proves each request's shape; the cost record XComs must match the usage the server reported.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from include.llm_simulator.testing import SimulatorHandle, running_simulator
from tests.e2e.helpers import CLOSE_WORKFLOW, expected_cost, spec_in_test_bundle, xcoms

# Not shaped like an OpenAI/Anthropic key, so the error redaction patterns cannot be what hides it.
COMMON_AI_KEY = "pydanticai-Secret-0f9e8d7c6b5a4321"
WRONG_KEY = "pydanticai-Wrong-11aa22bb33cc44dd"


OPENERS = {
    "Use get_payroll_summary": "hr.payroll_export",
    "Payroll:": "finance.cash_check",
    "Give the close verdict": "finance.close_verdict",
}


@pytest.fixture
def write_workflow() -> Iterator[Any]:
    """The DAG of CLOSE_WORKFLOW on a model and provider, from the test DAG bundle; removed afterwards."""
    with ExitStack() as stack:
        yield lambda name, model, provider: stack.enter_context(
            spec_in_test_bundle(name, CLOSE_WORKFLOW.format(name=name, model=model, provider=provider)))


# --- reading the simulator's log --------------------------------------------------------------------------


def _input_items(request: dict) -> list[dict]:
    body = request["request"]
    if "input" in body:
        items = body["input"]
        return [{"role": "user", "content": items}] if isinstance(items, str) else items
    return body["messages"]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(part.get("text", "") for part in content or [] if isinstance(part, dict))


def _first_user_text(request: dict) -> str:
    return next(_text(i.get("content")) for i in _input_items(request) if i.get("role") == "user")


def _system_messages(request: dict) -> list[str]:
    return [_text(i.get("content")) for i in _input_items(request) if i.get("role") in ("system", "developer")]


def _tool_names(request: dict) -> list[str]:
    return [t["function"]["name"] if "function" in t else t["name"] for t in request["request"].get("tools") or []]


def _by_agent(requests: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for request in requests:
        text = _first_user_text(request)
        task_id = next(task for opener, task in OPENERS.items() if text.startswith(opener))
        grouped.setdefault(task_id, []).append(request)
    return grouped


def _assert_cost_records_match(dag_id: str, run_id: str, by_agent: dict[str, list[dict]]) -> None:
    records = xcoms(dag_id, run_id, "cost_record")
    for task_id, reqs in by_agent.items():
        record = records[task_id]
        assert record["status"] == "success" and record["calls"] == len(reqs)
        assert record["input_tokens"] == sum(r["usage"]["input_tokens"] for r in reqs) > 0
        assert record["output_tokens"] == sum(r["usage"]["output_tokens"] for r in reqs) > 0
        assert record["estimated_usage_calls"] == 0
        assert [(c["input_tokens"], c["output_tokens"]) for c in record["requests"]] == \
            [(r["usage"]["input_tokens"], r["usage"]["output_tokens"]) for r in reqs]
        assert record["cost_usd"] > 0
        assert math.isclose(record["cost_usd"], float(expected_cost(reqs)), rel_tol=1e-9)


# --- the OpenAI Responses API -----------------------------------------------------------------------------


def test_erp_workflow_on_openai_responses_api(airflow_db, sim, write_workflow):
    dag = write_workflow("wire_responses", "gpt-4o-mini", "responses")
    run = dag.test()
    assert run.state == "success"

    requests = sim.requests()
    assert {r["path"] for r in requests} == {"/v1/responses"} and {r["status"] for r in requests} == {200}
    assert {r["model"] for r in requests} == {"gpt-4o-mini"}
    by_agent = _by_agent(requests)
    assert {task: len(reqs) for task, reqs in by_agent.items()} == {
        "hr.payroll_export": 2, "finance.cash_check": 2, "finance.close_verdict": 1}

    tool_round, answer = by_agent["hr.payroll_export"]
    # The system prompt travels as the Responses API's top-level instructions, on every round.
    for request in (tool_round, answer):
        assert request["request"]["instructions"] == "You are the payroll accountant. Quote amounts exactly."
        assert _system_messages(request) == []
    assert _tool_names(tool_round) == ["get_payroll_summary"]
    [tool] = tool_round["request"]["tools"]
    assert tool["type"] == "function" and tool["parameters"]["type"] == "object" and "strict" in tool
    assert tool_round["request"]["max_output_tokens"] == 700
    assert [item.get("type", "message") for item in _input_items(answer)][-2:] == ["function_call",
                                                                                   "function_call_output"]
    [call] = [item for item in tool_round["response"]["output"] if item["type"] == "function_call"]
    [output] = [item for item in _input_items(answer) if item.get("type") == "function_call_output"]
    assert output["call_id"] == call["call_id"] and json.loads(call["arguments"]) == {"period": "2026-10"}
    assert not any(item.get("type") == "function_call_output" for item in _input_items(tool_round))

    [verdict_request] = by_agent["finance.close_verdict"]
    fmt = verdict_request["request"]["text"]["format"]
    assert fmt["type"] == "json_schema" and fmt["schema"]["required"] == ["verdict", "closing_cash"]

    outputs = {task: value["output"] for task, value in xcoms(dag.dag_id, run.run_id, "return_value").items()
               if task != "workflow_summary"}
    payroll_answer = answer["response"]["output"][0]["content"][0]["text"]
    assert outputs["hr.payroll_export"] == payroll_answer and "get_payroll_summary=" in payroll_answer
    assert outputs["finance.close_verdict"]["verdict"] in ("reconciled", "adjustments_needed")

    _assert_cost_records_match(dag.dag_id, run.run_id, by_agent)
    summary = xcoms(dag.dag_id, run.run_id, "return_value")["workflow_summary"]
    assert summary["status"] == "completed" and summary["total_calls"] == len(requests) == 5
    assert summary["total_input_tokens"] == sum(r["usage"]["input_tokens"] for r in requests)
    assert math.isclose(summary["total_cost"], float(expected_cost(requests)), rel_tol=1e-9)


# --- apache-airflow-providers-common-ai's pydanticai connection ------------------------------------------


@pytest.fixture(scope="module")
def keyed_simulator() -> Iterator[SimulatorHandle]:
    with running_simulator(api_key=COMMON_AI_KEY) as sim:
        yield sim


@pytest.fixture
def keyed_sim(keyed_simulator: SimulatorHandle) -> SimulatorHandle:
    keyed_simulator.reset()
    return keyed_simulator


def _pydanticai_conn(monkeypatch, sim: SimulatorHandle, key: str) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_PYDANTICAI_SIM", json.dumps({
        "conn_type": "pydanticai", "password": key, "host": sim.openai_base_url,
        "extra": {"model": "openai:gpt-4o-mini"},
    }))


@pytest.mark.parametrize(("model", "cls_name", "path"), [
    ("openai:gpt-4o-mini", "OpenAIResponsesModel", "/v1/responses"),
    ("openai-chat:gpt-4o-mini", "OpenAIChatModel", "/v1/chat/completions"),
])
def test_pydanticai_model_has_no_sdk_retries_and_is_shared(keyed_sim, monkeypatch, model, cls_name, path):
    import asyncio

    from pydantic_ai import Agent

    from erp_agents.hooks.model_hook import AgentModelHook
    from erp_agents.spec.models import ProviderConfig

    _pydanticai_conn(monkeypatch, keyed_sim, COMMON_AI_KEY)
    keyed_sim.script(["500"])

    async def run() -> tuple[Any, Exception | None]:
        hook = AgentModelHook(ProviderConfig(type="pydanticai", conn_id="pydanticai_sim", request_timeout=7.5))
        async with hook.model(model) as built:
            client = built.client
            assert type(built).__name__ == cls_name and str(client.base_url) == keyed_sim.openai_base_url + "/"
            assert (client.max_retries, client.timeout) == (0, 7.5)
            try:
                await Agent(built).run("hello")
            except Exception as exc:  # the scripted 500, straight through: the SDK did not retry it
                return client, exc
        return client, None

    client, error = asyncio.run(run())
    assert error is not None and "500" in str(error)
    assert [(r["path"], r["status"]) for r in keyed_sim.requests()] == [(path, 500)]
    # One client per connection and model in a process, shared by every agent: an agent's end leaves it open.
    assert not client.is_closed()


def _everything_the_run_left(dag_id: str, run_id: str, captured: str, caplog) -> str:
    """XComs of every key, captured stdout/stderr, log records and Airflow's log files, as one text."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        values = session.execute(select(XComModel.key, XComModel.value).where(
            XComModel.dag_id == dag_id, XComModel.run_id == run_id)).all()
    log_folder = Path(__import__("os").environ["AIRFLOW__LOGGING__BASE_LOG_FOLDER"])
    files = [p.read_text(errors="replace") for p in log_folder.rglob("*") if p.is_file() and dag_id in str(p)]
    records = [f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records]
    return "\n".join([json.dumps([list(v) for v in values], default=str), captured, *records, *files])


def test_pydanticai_connection_runs_workflow_with_tool_round_and_keeps_key_secret(
    airflow_db, keyed_sim, write_workflow, monkeypatch, capfd, caplog
):
    caplog.set_level("DEBUG")
    _pydanticai_conn(monkeypatch, keyed_sim, COMMON_AI_KEY)
    dag = write_workflow("common_ai_ok", "openai:gpt-4o-mini", "common_ai")
    run = dag.test()
    assert run.state == "success"

    requests = keyed_sim.requests()
    # pydantic-ai's "openai:" model string is its OpenAI Responses model: the common-ai hook built it from the
    # connection (host = base_url, password = API key); the simulator accepted only that key.
    assert {(r["path"], r["status"], r["model"]) for r in requests} == {("/v1/responses", 200, "gpt-4o-mini")}
    by_agent = _by_agent(requests)
    tool_round, answer = by_agent["hr.payroll_export"]
    assert _tool_names(tool_round) == ["get_payroll_summary"]
    assert any(item.get("type") == "function_call_output" for item in _input_items(answer))
    assert len(by_agent["finance.cash_check"]) == 2
    # A pydanticai provider takes structured output through a tool (final_result_*), not text.format.
    [verdict_request] = by_agent["finance.close_verdict"]
    assert any(name.startswith("final_result") for name in _tool_names(verdict_request))

    outputs = xcoms(dag.dag_id, run.run_id, "return_value")
    assert "get_payroll_summary=" in outputs["hr.payroll_export"]["output"]
    assert outputs["finance.close_verdict"]["output"]["verdict"] in ("reconciled", "adjustments_needed")
    _assert_cost_records_match(dag.dag_id, run.run_id, by_agent)
    records = xcoms(dag.dag_id, run.run_id, "cost_record")
    assert records["hr.payroll_export"]["provider"] == "common_ai" and records["hr.payroll_export"]["tool_calls"] == 1

    left = _everything_the_run_left(dag.dag_id, run.run_id, "".join(capfd.readouterr()), caplog)
    assert "Agent payroll_export: openai:gpt-4o-mini via common_ai" in left  # the logs really were captured
    assert COMMON_AI_KEY not in left
    assert COMMON_AI_KEY not in Path(keyed_sim.log_path).read_text()


def test_pydanticai_connection_with_wrong_key_fails_without_leaking_it(
    airflow_db, keyed_sim, write_workflow, monkeypatch, capfd, caplog
):
    caplog.set_level("DEBUG")
    _pydanticai_conn(monkeypatch, keyed_sim, WRONG_KEY)
    dag = write_workflow("common_ai_bad_key", "openai:gpt-4o-mini", "common_ai")
    run = dag.test()
    assert run.state == "failed"

    assert [(r["path"], r["status"]) for r in keyed_sim.requests()] == [("/v1/responses", 401)]  # no SDK retry
    record = xcoms(dag.dag_id, run.run_id, "cost_record")["hr.payroll_export"]
    assert record["status"] == "failed" and record["failed_calls"] == 1
    assert "HTTP 401" in record["error"] and "invalid api key" in record["error"]

    left = _everything_the_run_left(dag.dag_id, run.run_id, "".join(capfd.readouterr()), caplog)
    assert "HTTP 401" in left  # the failure was logged and captured
    assert WRONG_KEY not in left and COMMON_AI_KEY not in left
    assert WRONG_KEY not in Path(keyed_sim.log_path).read_text()
