"""erp_nightly end to end through ``dag.test()`` (the ``airflow dags test`` path) and real HTTP."""

from __future__ import annotations

import math

import pytest
from airflow.dag_processing.dagbag import DagBag

from erp_agents.spec.loader import load_spec_file
from erp_agents.triggers.prompt import render_prompt
from tests.conftest import ROOT
from tests.e2e.helpers import expected_cost, final_text, first_user_text, xcoms


@pytest.fixture(scope="module")
def erp_nightly():
    return DagBag(dag_folder=str(ROOT / "dags")).dags["erp_nightly"]


def _agent_of_request(spec) -> dict[str, str]:
    """First rendered line of each agent's prompt -> task id (each ERP prompt opens with its role)."""
    return {
        render_prompt(a.prompt_template.splitlines()[0], {"params": spec.params}, agent=a.name): f"{a.module.lower()}.{a.name}"
        for a in spec.agents
    }


def test_erp_nightly_runs_end_to_end(airflow_db, sim, erp_nightly):
    spec = load_spec_file(ROOT / "dags/specs/erp_nightly.yaml")
    run = erp_nightly.test()
    assert run.state == "success"

    requests = sim.requests()
    openers = _agent_of_request(spec)
    by_agent: dict[str, list[dict]] = {}
    for request in requests:
        text = first_user_text(request)
        task_id = next(t for opener, t in openers.items() if text.startswith(opener))
        by_agent.setdefault(task_id, []).append(request)
    # Every agent: one tool round, then its final answer; all 200s.
    assert sorted(by_agent) == sorted(openers.values())
    assert all(len(reqs) == 2 for reqs in by_agent.values())
    assert {r["status"] for r in requests} == {200}

    # Dependency order as the server saw it: no agent called before its upstreams finished.
    for task in erp_nightly.tasks:
        for upstream in task.upstream_task_ids:
            if upstream in by_agent and task.task_id in by_agent:
                assert min(r["ts_start"] for r in by_agent[task.task_id]) >= max(r["ts_end"] for r in by_agent[upstream])

    # Outputs in XCom are the model's final answers, and downstream prompts carry them verbatim.
    outputs = xcoms("erp_nightly", run.run_id, "return_value")
    for task_id, reqs in by_agent.items():
        assert outputs[task_id] == {"schema_version": 1, "output": final_text(reqs[-1]), "agent": task_id.split(".")[1],
                                    "model": reqs[-1]["model"]}
    reconciler_prompt = first_user_text(by_agent["finance.ledger_reconciler"][0])
    assert outputs["finance.bank_loader"]["output"] in reconciler_prompt
    assert outputs["hr.payroll_export"]["output"] in reconciler_prompt
    # Tool results reached the model and its answer.
    assert "reconcile_bank=" in outputs["finance.bank_loader"]["output"]
    assert '"difference":71472.19' in outputs["finance.bank_loader"]["output"]

    # Cost records per agent and the summary's totals match the server's own usage counts.
    records = xcoms("erp_nightly", run.run_id, "cost_record")
    for task_id, reqs in by_agent.items():
        assert records[task_id]["calls"] == 2
        assert records[task_id]["input_tokens"] == sum(r["usage"]["input_tokens"] for r in reqs)
        assert records[task_id]["output_tokens"] == sum(r["usage"]["output_tokens"] for r in reqs)
        assert records[task_id]["tool_calls"] >= 1
    summary = outputs["workflow_summary"]
    assert summary["status"] == "completed"
    assert summary["agents"] == {"schema_version": 1, "total": 15, "succeeded": 15, "failed": 0}
    assert summary["total_calls"] == len(requests) == 30
    assert summary["total_input_tokens"] == sum(r["usage"]["input_tokens"] for r in requests)
    assert summary["total_output_tokens"] == sum(r["usage"]["output_tokens"] for r in requests)
    assert math.isclose(summary["total_cost"], float(expected_cost(requests)), rel_tol=1e-9)
    # The ledger (every try, money's source of truth) agrees with the XCom records to the cent.
    assert summary["ledger_cost"] is not None
    assert abs(summary["ledger_cost"] - float(expected_cost(requests))) < 0.01
