"""One ERP workflow, end to end, on each wire format: OpenAI, Anthropic, OpenAI-compatible (base_url).

Each run has a tool round and a structured-output agent; the simulator's log proves every request's
shape (system prompt, tools offered, tool results sent back, max_tokens, structured output).
"""

from __future__ import annotations

import json

import pytest


from tests.e2e.conftest import SIM_KEY
from tests.e2e.helpers import CLOSE_WORKFLOW, spec_in_test_bundle, xcoms


# The close workflow plus an agent that reads a field of the structured verdict.
WORKFLOW = CLOSE_WORKFLOW + """\
  - name: board_note
    module: Finance
    llm_config: {{model: "{model}", provider: {provider}, max_tokens: 300}}
    prompt_template: "Verdict {{{{ agents.close_verdict.output.verdict }}}}; full: {{{{ agents.close_verdict.output }}}}"
    dependencies: [close_verdict]
"""

CASES = {
    "openai": ("gpt-4o-mini", "openai"),
    "anthropic": ("claude-sonnet-4-5", "anthropic"),
    "gateway": ("llama-3.1-70b", "openai"),
}


@pytest.fixture
def connections(sim, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ANTHROPIC_DEFAULT", json.dumps({"conn_type": "anthropic", "password": SIM_KEY, "host": sim.base_url}))
    monkeypatch.setenv("AIRFLOW_CONN_GATEWAY_DEFAULT", json.dumps({"conn_type": "openai", "password": SIM_KEY, "host": sim.openai_base_url}))
    return sim


def _offered_tools(request: dict) -> list[str]:
    tools = request["request"].get("tools") or []
    return [t["function"]["name"] if "function" in t else t["name"] for t in tools]


def _system_text(request: dict) -> str:
    body = request["request"]
    if "system" in body:
        system = body["system"]
        return system if isinstance(system, str) else " ".join(b["text"] for b in system)
    return " ".join(m["content"] for m in body["messages"] if m["role"] in ("system", "developer"))


def _has_tool_results(request: dict) -> bool:
    for message in request["request"]["messages"]:
        if message["role"] == "tool":
            return True
        content = message.get("content")
        if isinstance(content, list) and any(block.get("type") == "tool_result" for block in content):
            return True
    return False


@pytest.mark.parametrize("provider", list(CASES))
def test_erp_workflow_on_each_wire_format(airflow_db, connections, provider):
    sim = connections
    model, api = CASES[provider]
    name = f"wire_{provider}"
    with spec_in_test_bundle(name, WORKFLOW.format(name=name, provider=provider, model=model)) as dag:
        run = dag.test()
    assert run.state == "success"

    requests = sim.requests()
    assert {r["api"] for r in requests} == {api} and {r["model"] for r in requests} == {model}
    assert {r["status"] for r in requests} == {200}
    payroll = [r for r in requests if "get_payroll_summary" in _offered_tools(r)]
    assert len(payroll) == 2  # tool round, then the final answer
    assert "You are the payroll accountant" in _system_text(payroll[0])
    assert not _has_tool_results(payroll[0]) and _has_tool_results(payroll[1])
    max_tokens = payroll[0]["request"].get("max_tokens") or payroll[0]["request"].get("max_completion_tokens")
    assert max_tokens == 700
    cash = [r for r in requests if "get_ledger_balance" in _offered_tools(r)]
    assert len(cash) == 2 and _has_tool_results(cash[1])

    outputs = {task: value["output"] for task, value in xcoms(dag.dag_id, run.run_id, "return_value").items()
               if task != "workflow_summary"}
    verdict = outputs["finance.close_verdict"]
    assert isinstance(verdict, dict) and verdict["verdict"] in ("reconciled", "adjustments_needed")
    assert isinstance(verdict["closing_cash"], float | int)
    note_request = requests[-1]
    note_prompt = json.dumps(note_request["request"]["messages"])
    assert f"Verdict {verdict['verdict']}" in note_prompt
    assert json.dumps(json.dumps(verdict, sort_keys=True))[1:-1] in note_prompt  # downstream got parsed JSON
    verdict_request = next(r for r in requests if "Give the close verdict" in json.dumps(r["request"]["messages"]))
    if api == "openai":
        assert verdict_request["request"]["response_format"]["type"] == "json_schema"
    else:
        assert any(name.startswith("final_result") for name in _offered_tools(verdict_request))
    summary = xcoms(dag.dag_id, run.run_id, "return_value")["workflow_summary"]
    assert summary["status"] == "completed" and summary["total_calls"] == len(requests)
    assert summary["total_input_tokens"] == sum(r["usage"]["input_tokens"] for r in requests)
