"""The Python API and the demo on the embedded deployment (PostgreSQL from the wheel, real
scheduler, triggerer, dag-processor and api-server), checked against the simulator's own log.

The session's one deployment and its slow simulator (3 s per call) serve every test here.
"""

from __future__ import annotations

import json
import time

import pytest

from erp_agents import Agent, EngineConfig, OpenAIClient, RetryPolicy, Workflow, WorkflowStatus
from erp_agents.engine import OrchestrationEngine
from erp_agents.stack import Deployment
from erp_agents.stack.demo import peak_in_flight
from tests.e2e.conftest import SLOW_CONN, SLOW_KEY, SLOW_LATENCY
from tests.e2e.helpers import final_text, first_user_text

KEY = SLOW_KEY
LATENCY = SLOW_LATENCY


@pytest.fixture(scope="module")
def sim(slow_simulator):
    return slow_simulator


@pytest.fixture(scope="module")
def engine(deployment, slow_simulator):
    client = OpenAIClient(api_key=KEY, base_url=slow_simulator.openai_base_url, conn_id=SLOW_CONN)
    with OrchestrationEngine(EngineConfig(), llm_client=client, home=deployment.home, run_timeout=300) as running:
        yield running
    assert deployment.status().running  # an engine that attached leaves the deployment running


def _agent(name: str, **fields) -> Agent:
    return Agent(name=name, module="Finance", llm_config={"model": "gpt-4o-mini", "max_tokens": 60},
                 prompt_template=f"Check {name}.", **fields)


def test_eight_independent_agents_overlap_and_fan_in(engine, sim):
    sim.reset()
    workers = [_agent(f"check_{i}") for i in range(8)]
    fan_in = _agent("combine", dependencies=[a.name for a in workers])
    workflow_id = engine.register_workflow(Workflow(name="embedded_fan_in", agents=[*workers, fan_in]))

    result = engine.execute_workflow(workflow_id)

    assert result.status is WorkflowStatus.COMPLETED, result.reason
    requests = sorted(sim.requests(), key=lambda r: r["ts_start"])
    assert len(requests) == 9 and {r["status"] for r in requests} == {200}
    first_eight, last = requests[:8], requests[8]
    assert peak_in_flight(first_eight) == 8  # all eight were at the server at once
    assert last["ts_start"] >= max(r["ts_end"] for r in first_eight)  # the fan-in waited for them
    wall = last["ts_end"] - requests[0]["ts_start"]
    # Two levels of calls take 2 latencies; between them Airflow needs one triggerer loop turn to record
    # the ends, a scheduler pass and another turn to load the fan-in: 1-3 s on 2 cores, up to 4.7 s seen
    # while the rest of the suite loaded the machine. Run one at a time the nine calls would take 9
    # latencies (27 s); overlapped they take 2 plus that gap.
    level_gap = wall - (last["ts_end"] - last["ts_start"]) - max(r["ts_end"] - r["ts_start"] for r in first_eight)
    assert wall < 3 * LATENCY + 3, (wall, level_gap)
    assert result.agent_results["combine"].output == last["response"]["choices"][0]["message"]["content"]


def test_max_parallel_agents_holds_across_the_triggerers(engine, sim):
    """Six independent agents under ``max_parallel_agents: 2``: the scheduler defers all six at once and
    the triggerers start them, yet no more than two are ever at the server, in three waves."""
    sim.reset()
    agents = [_agent(f"capped_{i}") for i in range(6)]
    workflow_id = engine.register_workflow(Workflow(name="embedded_capped", agents=agents, max_parallel_agents=2))

    result = engine.execute_workflow(workflow_id)

    assert result.status is WorkflowStatus.COMPLETED, result.reason
    requests = sim.requests()
    assert len(requests) == 6 and {r["status"] for r in requests} == {200}
    assert peak_in_flight(requests) == 2
    assert max(r["ts_end"] for r in requests) - min(r["ts_start"] for r in requests) >= 3 * LATENCY - 0.5


def test_fan_out_chunks_start_in_the_triggerer_and_the_engine_returns_every_item(engine, sim):
    """26 open invoices in chunks of 5: the items step and six mapped tasks, each started by the scheduler
    in the triggerer (never on a worker), each chunk with its own share read by map index; under the default limit of 10 calls at
    once, more than one chunk's items are at the server together; the engine returns the joined list."""
    from include.erp.tools.finance import list_open_invoices

    sim.reset()
    invoices = list_open_invoices()
    reviewer = Agent(name="reviewer", module="Finance", llm_config={"model": "gpt-4o-mini", "max_tokens": 40},
                     for_each={"tool": "finance.list_open_invoices"}, chunk_size=5,
                     prompt_template="Review invoice {{ item.invoice_id }}.")
    workflow_id = engine.register_workflow(Workflow(name="embedded_fan_out", agents=[reviewer]))

    result = engine.execute_workflow(workflow_id)

    assert result.status is WorkflowStatus.COMPLETED, result.reason
    requests = sim.requests()
    assert len(requests) == len(invoices) and {r["status"] for r in requests} == {200}
    assert peak_in_flight(requests) > 5  # two chunks' items at once
    output = result.agent_results["reviewer"].output
    answers = {first_user_text(r): final_text(r) for r in requests}
    assert output == [answers[f"Review invoice {inv['invoice_id']}."] for inv in invoices]  # item order kept
    tis = engine.api.get(f"/dags/{workflow_id}/dagRuns/{result.run_id}/taskInstances", limit=100)["task_instances"]
    chunks = [ti for ti in tis if ti["task_id"] == "finance.reviewer"]
    assert sorted(ti["map_index"] for ti in chunks) == list(range(6))
    assert all(ti["state"] == "success" and ti["pid"] is None for ti in chunks), chunks  # no worker process
    others = [ti for ti in tis if ti["task_id"] != "finance.reviewer"]  # the items step and the summary
    assert {ti["task_id"] for ti in others} == {"finance.reviewer__items", "workflow_summary"}
    assert all(ti["state"] == "success" and ti["pid"] is None for ti in others), others
    assert result.summary["per_agent"]["finance.reviewer"]["items_ok"] == len(invoices)


def test_key_reaches_the_triggerer_only_through_its_environment(engine):
    deployment: Deployment = engine.deployment
    files = [p for p in deployment.home.rglob("*") if p.is_file() and "postgres" not in p.parts]
    assert all(KEY not in p.read_text(errors="replace") for p in files if p.stat().st_size < 5_000_000)
    from sqlalchemy import create_engine, text

    db = create_engine(deployment.env()["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    with db.connect() as conn:
        for table in ("connection", "serialized_dag", "xcom", "dag_code", "trigger"):
            assert KEY not in str(conn.execute(text(f"SELECT * FROM {table}")).fetchall()), table
    db.dispose()


def test_forty_agents_with_injected_faults_end_and_every_component_survives(engine, sim):
    sim.reset()
    pattern = ["429", "ok", "503", "ok", "ok", "500", "ok", "ok", "429", "ok"]  # 30 % faults
    sim.script(pattern * 4)
    agents = [_agent(f"item_{i:02d}", retry_policy=RetryPolicy(max_retries=3, base_delay=1, max_delay=2)) for i in range(40)]
    workflow_id = engine.register_workflow(
        Workflow(name="embedded_faults", agents=agents, allow_partial_completion=True, max_parallel_agents=40)
    )
    started = time.monotonic()
    result = engine.execute_workflow(workflow_id)

    assert result.status in (WorkflowStatus.COMPLETED, WorkflowStatus.PARTIAL), result.reason
    statuses = [r["status"] for r in sim.requests()]
    assert statuses.count(200) >= 28 and {429, 500, 503} <= set(statuses)
    assert engine.deployment.status().running, "a component died under the faults"
    assert time.monotonic() - started < 240


def test_demo_peak_in_flight_shows_overlap(engine, sim):
    """erp_nightly as `make demo` runs it: agents of one dependency level overlap at the server."""
    from erp_agents.stack.rest import AirflowApi

    sim.reset()
    deployment = engine.deployment
    state = deployment.layout.read_state()
    conn = json.dumps({"conn_type": "openai", "password": KEY, "host": sim.openai_base_url})
    deployment.ensure_triggerer_env({"AIRFLOW_CONN_OPENAI_DEFAULT": conn})
    api = AirflowApi(state.api_url, *deployment.login())
    deadline = time.monotonic() + 120
    while api.dag("erp_nightly") is None and time.monotonic() < deadline:
        time.sleep(1)
    api.unpause("erp_nightly")
    run_id = api.trigger("erp_nightly")
    assert api.wait("erp_nightly", run_id, timeout=300) in ("success", "failed")
    assert peak_in_flight(sim.requests()) >= 3
