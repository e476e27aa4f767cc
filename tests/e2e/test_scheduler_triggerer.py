"""basic_workflow under Airflow's real scheduler, dag-processor, triggerer and API server.

Runs on both metadata databases: SQLite (the embedded default) and PostgreSQL (what scale runs use).

Proves the production path: agent tasks start in the triggerer and end there with their XComs,
downstream agents read those outputs, and the summary runs there too: no worker process at all.
"""

from __future__ import annotations

import re

import pytest

from erp_agents.stack.settings import TRIGGERERS

from tests.e2e.conftest import openai_conn
from tests.e2e.helpers import final_text, first_user_text
from tests.services import fresh_postgres_database
from tests.stack import airflow_stack

AGENTS = ("finance.data_processor", "finance.data_analyzer", "finance.report_generator")


@pytest.fixture(scope="module")
def stack(simulator, tmp_path_factory):
    """A user's PostgreSQL in place of the embedded one (the shared e2e deployment covers the embedded)."""
    env = {"AIRFLOW_CONN_OPENAI_DEFAULT": openai_conn(simulator.openai_base_url)}
    database = fresh_postgres_database("erp_agents_e2e")
    with airflow_stack(tmp_path_factory.mktemp("airflow-stack"), extra_env=env, sql_alchemy_conn=database) as running:
        running.wait_dags(["basic_workflow"])
        running.unpause("basic_workflow")
        yield running


def test_agents_start_and_finish_in_the_triggerer(stack, simulator):
    simulator.reset()
    stack.airflow("dags", "trigger", "basic_workflow", "--run-id", "e2e_run")
    assert stack.wait_run("basic_workflow", "e2e_run", timeout=240) == "success"
    assert stack.task_states("basic_workflow", "e2e_run") == {**{a: "success" for a in AGENTS}, "workflow_summary": "success"}

    triggerer_log = "".join(stack.log_of(name) for name in TRIGGERERS)
    for task_id in AGENTS:
        assert f"Start from trigger enabled for task {task_id}" in triggerer_log
    # No worker ran anything: the agents and the summary started and ended in the triggerer.
    assert "Start from trigger enabled for task workflow_summary" in triggerer_log
    worker_runs = stack.query(
        "SELECT task_id, hostname, pid FROM task_instance WHERE run_id = 'e2e_run' AND pid IS NOT NULL"
    )
    assert worker_runs == []

    requests = simulator.requests()
    assert len(requests) == 4  # the processor's tool round, its answer, then one call per downstream agent
    xcom_rows = stack.query(
        "SELECT task_id, key, value FROM xcom WHERE run_id = 'e2e_run' AND key = 'return_value'"
    )
    assert {r["task_id"] for r in xcom_rows} == {*AGENTS, "workflow_summary"}
    # Outputs pushed by TaskSuccessEvent reach downstream prompts as the plain text the model wrote.
    by_opener = {first_user_text(r).split("\n", 1)[0]: r for r in requests}
    processor = next(r for o, r in by_opener.items() if o.startswith("You are a financial data processor"))
    analyzer = next(r for o, r in by_opener.items() if o.startswith("Analyse this processed ledger"))
    assert final_text(processor) in first_user_text(analyzer)
    assert '"[gpt-4o-mini#' not in first_user_text(analyzer)
    task_logs = _task_logs(stack)
    assert re.search(r"Workflow basic_workflow: completed \(all agents succeeded\); 3/3 agents succeeded",
                     stack.log_of("scheduler") + task_logs)
    # what each agent logged in the trigger runner reached its own task's log through the supervisor,
    # its last lines included (they come after the runner reports the trigger finished)
    for task_id in AGENTS:
        agent = task_id.split(".", 1)[1]
        own_log = "\n".join(p.read_text(errors="replace")
                            for p in stack.home.rglob(f"task_id={task_id}/attempt=*.log.trigger.*.log"))
        assert re.search(rf'"event":"Agent {agent} finished: \d+ calls.*"task_id":"{re.escape(task_id)}"', own_log), agent
        assert '"event":"trigger completed"' in own_log, agent


def _task_logs(stack) -> str:
    return "\n".join(p.read_text(errors="replace") for p in (stack.home / "logs").rglob("*.log"))
