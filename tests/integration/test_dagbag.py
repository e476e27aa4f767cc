"""The example specs through Airflow's own DagBag: no import errors, the expected structure."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from tests.conftest import ROOT

EXPECTED_DAGS = {"basic_workflow", "erp_nightly", "hr_leave_review", "inventory_replenishment", "compliance_weekly",
                 "hr_payroll_run", "payroll_close", "invoice_review"}
PYTHON_EXAMPLES = {"basic_workflow_py", "erp_multi_module_py", "hr_review_py", "inventory_review_py", "compliance_review_py"}


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(ROOT / "dags"))


@pytest.fixture(scope="module")
def examples_bag() -> DagBag:
    """The Python API scripts: ignored by the dags folder (.airflowignore), since the engine registers them
    itself, but still importable as DAG files."""
    return DagBag(dag_folder=str(ROOT / "dags" / "examples"))


def test_every_example_imports_without_errors(dagbag, examples_bag):
    assert dagbag.import_errors == {} and examples_bag.import_errors == {}
    assert EXPECTED_DAGS == set(dagbag.dag_ids)  # the scripts under examples/ are not the dags folder's DAGs
    assert PYTHON_EXAMPLES == set(examples_bag.dag_ids)


def test_python_examples_match_their_yaml_twins(examples_bag):
    """The Python API builds the same kind of DAG as a spec: groups per module, edges, summary last."""
    dagbag = examples_bag
    multi = dagbag.dags["erp_multi_module_py"]
    assert {t.task_group.group_id for t in multi.tasks if t.task_id != "workflow_summary"} == {
        "hr", "finance", "inventory", "compliance"}
    assert multi.get_task("finance.ledger_reconciler").upstream_task_ids == {"finance.bank_loader", "hr.payroll_export"}
    assert multi.get_task("workflow_summary").upstream_task_ids == {t.task_id for t in multi.tasks} - {"workflow_summary"}
    basic = dagbag.dags["basic_workflow_py"]
    assert basic.get_task("finance.report_generator").upstream_task_ids == {"finance.data_analyzer"}
    assert basic.max_active_tasks == 3 and basic.dagrun_timeout == timedelta(seconds=1800 + 300)  # workflow timeout + grace
    assert basic.get_task("finance.data_processor").priority_weight == 8


def test_erp_nightly_structure(dagbag):
    dag = dagbag.dags["erp_nightly"]
    groups = {t.task_group.group_id for t in dag.tasks if t.task_id != "workflow_summary"}
    assert groups == {"hr", "finance", "inventory", "compliance"}
    assert len(dag.tasks) == 16
    assert dag.max_active_tasks == 8
    assert dag.dagrun_timeout == timedelta(seconds=5400 + 300)  # workflow timeout + grace
    assert {"erp-agents", "nightly", "hr", "finance"} <= set(dag.tags)
    assert dag.timetable.expression == "0 2 * * *"
    reconciler = dag.get_task("finance.ledger_reconciler")
    assert reconciler.upstream_task_ids == {"finance.bank_loader", "hr.payroll_export"}
    assert reconciler.priority_weight == 8 and reconciler.weight_rule == "absolute"
    # max_retries 2 are retries inside each call; one Airflow task retry covers what is outside a call.
    assert reconciler.retries == 1
    assert reconciler.retry_delay == timedelta(seconds=10)
    assert reconciler.retry_exponential_backoff == 2.0
    assert reconciler.max_retry_delay == timedelta(seconds=120)
    # The agent stops itself at 300 s from when it holds one of the run's 8 agent slots (15 agents could
    # want one); the wait for a slot is not part of that, so Airflow's backstop is the workflow timeout.
    assert reconciler.invocation.agent.timeout == 300 and reconciler.invocation.max_parallel_agents == 8
    assert reconciler.execution_timeout == timedelta(seconds=5400 + 30)
    assert reconciler.start_from_trigger is True
    assert reconciler.start_trigger_args.trigger_cls == "erp_agents.triggers.agent.AgentTrigger"
    assert dag.get_task("finance.month_end_report").upstream_task_ids == {
        "finance.budget_variance", "finance.ap_aging", "inventory.inventory_valuation"
    }
    summary = dag.get_task("workflow_summary")
    assert summary.trigger_rule == "all_done"
    assert len(summary.upstream_task_ids) == 15


def test_parallel_levels_are_in_the_docs(dagbag):
    doc = dagbag.dags["erp_nightly"].doc_md
    assert "| 0 | `hr.payroll_export`, `finance.bank_loader`," in doc
    assert "| 3 | `finance.month_end_report`, `compliance.compliance_report` |" in doc


def test_trigger_kwargs_are_json_and_carry_no_secrets(dagbag):
    import json

    task = dagbag.dags["erp_nightly"].get_task("finance.ledger_reconciler")
    kwargs = task.start_trigger_args.trigger_kwargs
    text = json.dumps(kwargs)
    assert set(kwargs) == {"invocation", "end_in_triggerer", "task_retries", "end_failures_in_triggerer"}
    assert (kwargs["task_retries"], kwargs["end_failures_in_triggerer"]) == (task.retries, True)
    invocation = task.invocation
    assert invocation.upstream == {"bank_loader": "finance.bank_loader", "payroll_export": "hr.payroll_export"}
    assert invocation.provider.conn_id == "openai_default"
    assert "password" not in text and "sk-" not in text


def test_the_invocation_is_stored_once_per_task_in_the_serialized_dag(dagbag):
    import json

    from airflow.serialization.serialized_objects import DagSerialization

    dag = dagbag.dags["erp_nightly"]
    text = json.dumps(DagSerialization.to_dict(dag))
    for task in dag.tasks:
        if hasattr(task, "invocation"):
            assert text.count(json.dumps(task.invocation.to_json())[1:-1]) == 1


def test_a_broken_spec_never_hides_the_others(tmp_path, caplog):
    dags = tmp_path / "dags"
    shutil.copytree(ROOT / "dags", dags)
    bad = dags / "specs" / "broken.yaml"
    bad.write_text((ROOT / "dags/specs/basic_workflow.yaml").read_text().replace(
        "name: basic_workflow", "name: broken_workflow").replace("[data_analyzer]", "[data_analyser_x]"))
    (dags / "specs" / "not_yaml.yaml").write_text("kind: Workflow\nname: [oops\n")
    with caplog.at_level("ERROR"):
        bag = DagBag(dag_folder=str(dags))
    assert bag.import_errors == {}
    assert EXPECTED_DAGS <= set(bag.dag_ids)
    assert "broken_workflow" not in bag.dag_ids
    assert f"{bad}:47:20: agents[2].dependencies[0]: unknown dependency 'data_analyser_x'; did you mean" in caplog.text
    assert "not_yaml.yaml:3:1: <document>: invalid YAML" in caplog.text


def test_parsing_touches_no_network(monkeypatch):
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("DAG parsing opened a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {} and EXPECTED_DAGS <= set(bag.dag_ids)


def test_cross_workflow_dependency_through_an_asset(dagbag):
    uri = "erp-agents://workflows/hr_payroll_run"
    assert [a.uri for a in dagbag.dags["hr_payroll_run"].get_task("workflow_summary").outlets] == [uri]
    consumer = dagbag.dags["payroll_close"]
    assert [a.uri for a in consumer.timetable.asset_condition.objects] == [uri]
    assert "Runs after: `hr_payroll_run`" in consumer.doc_md


def test_invoice_review_fans_out_over_mapped_chunks(dagbag):
    """The items step feeds a mapped agent task; the downstream agent reads the joined list."""
    dag = dagbag.dags["invoice_review"]
    reviewer = dag.get_task("finance.invoice_reviewer")
    assert type(reviewer).__name__ == "MappedOperator"
    assert reviewer.upstream_task_ids == {"finance.invoice_reviewer__items"}
    # Every chunk starts in the triggerer and reads its own chunk from the items step.
    assert reviewer.start_from_trigger is True
    assert reviewer.start_trigger_args.trigger_kwargs["chunk_source"] == "finance.invoice_reviewer__items"
    assert dag.get_task("finance.review_summary").upstream_task_ids == {"finance.invoice_reviewer"}


def test_parsing_the_dags_folder_does_not_import_the_agent_runtime():
    """The dag-processor and every worker task (the summary, items steps) parse DAG files: pydantic-ai,
    the providers and the governance stores are the triggerer's (about 1.3 s of CPU per parse)."""
    import subprocess
    import sys

    code = ("import sys; from airflow.dag_processing.dagbag import DagBag; "
            f"bag = DagBag(dag_folder={str(ROOT / 'dags')!r}); assert not bag.import_errors, bag.import_errors; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pydantic_ai', 'openai', 'anthropic', 'redis')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
