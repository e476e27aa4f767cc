"""OrchestrationEngine: the original Python API on the embedded deployment (real scheduler,
triggerer, dag-processor, api-server), against the simulator over real HTTP.

The README's quick-start (the original one with only its imports changed) and the Python example
DAG files run as scripts that attach to the shared deployment; the engine's results are checked
against the simulator's own log.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from erp_agents import Agent, EngineConfig, OpenAIClient, RetryPolicy, SpecError, Workflow, WorkflowStatus
from erp_agents.engine import OrchestrationEngine
from erp_agents.stack.rest import AirflowApi
from tests.conftest import ROOT
from tests.e2e.conftest import ENGINE_CONN, SCRIPT_KEY, SIM_KEY
from tests.e2e.helpers import expected_cost


def readme_quickstart() -> str:
    block = re.search(r"```python\n# quickstart\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block, "README.md lost its quick-start block"
    return block.group(1)


def run_script(path: Path, home: Path, base_url: str, key: str | None = None, timeout: float = 600) -> str:
    """Run a user's script with AIRFLOW_HOME at the deployment, as a user of `erp_agents up` would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(AIRFLOW_HOME=str(home), OPENAI_BASE_URL=base_url)
    if key:
        env["OPENAI_API_KEY"] = key
    done = subprocess.run([sys.executable, str(path)], env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    Path(home, f"{path.stem}.stderr").write_text(done.stderr)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def printed_cost(stdout: str, label: str = "Cost") -> Decimal:
    return Decimal(re.search(rf"^{label}: \$([0-9.]+)", stdout, re.M).group(1))


def api_of(deployment) -> AirflowApi:
    return AirflowApi(deployment.layout.read_state().api_url, *deployment.login())


def test_seed_quickstart_runs_with_only_its_imports_changed(deployment, script_simulator, tmp_path):
    script_simulator.reset()
    script = tmp_path / "quickstart.py"
    script.write_text(readme_quickstart())
    stdout = run_script(script, deployment.home, script_simulator.openai_base_url)
    requests = script_simulator.requests()
    assert "Status: completed" in stdout
    # Two agents, one call each, in dependency order, with the quick-start's model and temperatures.
    assert [r["request"]["temperature"] for r in requests] == [0.3, 0.5]
    assert {r["model"] for r in requests} == {"gpt-4"}
    assert printed_cost(stdout) == round(expected_cost(requests), 4) > 0
    assert deployment.status().running  # the script attached, so it left the deployment running


def test_python_examples_run_as_scripts(deployment, script_simulator):
    script_simulator.reset()
    stdout = run_script(ROOT / "dags/examples/parallel_workflows.py", deployment.home,
                        script_simulator.openai_base_url, SCRIPT_KEY)
    requests = script_simulator.requests()
    names = ("hr_review_py", "inventory_review_py", "compliance_review_py")
    for name in names:
        assert re.search(rf"^{name}\s+completed\s+\$", stdout, re.M), stdout
    # Two checks with a tool round each and one memo per workflow: 5 calls x 3 workflows.
    assert len(requests) == 15 and {r["status"] for r in requests} == {200}
    assert printed_cost(stdout, "Total cost") == round(expected_cost(requests), 4)
    # The three DAG runs overlapped in time on the one deployment.
    api = api_of(deployment)
    try:
        spans = sorted(_latest_run_span(api, name) for name in names)
    finally:
        api.close()
    assert spans[1][0] < spans[0][1] and spans[2][0] < spans[1][1], spans


def _latest_run_span(api: AirflowApi, dag_id: str) -> tuple[str, str]:
    run = api.get(f"/dags/{dag_id}/dagRuns", order_by="-run_after", limit=1)["dag_runs"][0]
    return (run["start_date"], run["end_date"])


@pytest.fixture
def engine(deployment, simulator):
    simulator.reset()
    client = OpenAIClient(api_key=SIM_KEY, base_url=simulator.openai_base_url, conn_id=ENGINE_CONN)
    with OrchestrationEngine(EngineConfig(), llm_client=client, home=deployment.home, run_timeout=300) as running:
        yield running


def _workflow(name: str, **fields) -> Workflow:
    agents = [
        Agent(name="collect", module="Finance", llm_config={"model": "gpt-4o-mini"}, prompt_template="Collect the ledger."),
        Agent(
            name="commentary", module="Finance", llm_config={"model": "gpt-4o"}, critical=False,
            retry_policy=RetryPolicy(max_retries=0), prompt_template="Comment on {{ agents.collect.output }}",
            dependencies=["collect"],
        ),
        Agent(name="close", module="Finance", llm_config={"model": "gpt-4o-mini"}, prompt_template="Close the period.",
              dependencies=["collect"]),
    ]
    return Workflow(name=name, agents=agents, **fields)


def test_engine_reports_partial_completion_per_agent(engine, simulator, deployment):
    workflow_id = engine.register_workflow(_workflow("engine_partial", allow_partial_completion=True))
    assert workflow_id == "engine_partial"
    assert engine.get_workflow_status(workflow_id)["status"] == "registered"
    simulator.script(["400"], model="gpt-4o")  # the non-critical agent's only call is refused

    result = engine.execute_workflow(workflow_id)

    assert result.status is WorkflowStatus.PARTIAL
    assert "finance.commentary" in result.reason
    agents = result.agent_results
    assert {n: a.state for n, a in agents.items()} == {"collect": "success", "commentary": "failed", "close": "success"}
    ok = [r for r in simulator.requests() if r["status"] == 200]
    assert agents["collect"].output == ok[0]["response"]["choices"][0]["message"]["content"]
    assert agents["commentary"].output is None and agents["commentary"].cost == 0
    assert Decimal(str(result.total_cost)) == pytest.approx(expected_cost(ok), abs=Decimal("1e-9"))
    assert result.total_tokens == sum(r["usage"]["input_tokens"] + r["usage"]["output_tokens"] for r in ok)
    assert engine.get_workflow_status(workflow_id)["status"] == "partial"
    # The seed's get_system_status, through the deployment's plugin route, agrees with the run.
    status = engine.get_system_status()
    assert set(status) >= {"engine", "monitoring", "rate_limiting", "cost_tracking"}
    assert status["monitoring"]["workflows"]["started"] >= 1 and status["monitoring"]["agents"]["failed"] >= 1
    assert status["cost_tracking"]["total_cost"] >= result.total_cost - 0.01
    per_agent = engine.get_agent_status(workflow_id)
    assert "finance.commentary" in str(per_agent) and "failed" in str(per_agent)
    # The refused agent (no task retries) ended in the triggerer: no worker process ran it.
    db = create_engine(deployment.env()["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    try:
        with db.connect() as conn:
            row = conn.execute(text("SELECT state, pid, try_number FROM task_instance WHERE dag_id = :d AND run_id = :r "
                                    "AND task_id = 'finance.commentary'"), {"d": workflow_id, "r": result.run_id}).one()
    finally:
        db.dispose()
    assert (row.state, row.pid, row.try_number) == ("failed", None, 1), row


def test_engine_run_fails_without_partial_completion_and_keeps_the_key_out(engine, simulator, deployment):
    workflow_id = engine.register_workflow(_workflow("engine_strict"))
    simulator.script(["400"], model="gpt-4o")
    result = engine.execute_workflow(workflow_id)
    assert result.status is WorkflowStatus.FAILED

    db = create_engine(deployment.env()["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    try:
        with db.connect() as conn:
            for table in ("serialized_dag", "xcom", "dag_code", "connection", "rendered_task_instance_fields", "log"):
                rows = conn.execute(text(f"SELECT * FROM {table}")).fetchall()
                assert SIM_KEY not in str(rows), table
    finally:
        db.dispose()
    logs = list(deployment.layout.logs.rglob("*.log"))
    assert logs and all(SIM_KEY not in p.read_text(errors="replace") for p in logs)


def test_engine_refuses_bad_workflows_and_unknown_ids(engine):
    cyclic = Workflow(
        name="engine_cycle",
        agents=[
            Agent(name="a", llm_config={"model": "gpt-4o-mini"}, prompt_template="x", dependencies=["b"]),
            Agent(name="b", llm_config={"model": "gpt-4o-mini"}, prompt_template="x", dependencies=["a"]),
        ],
    )
    with pytest.raises(SpecError, match="cycle"):
        engine.register_workflow(cyclic)
    with pytest.raises(KeyError, match="'nope' is not registered"):
        engine.execute_workflow("nope")
