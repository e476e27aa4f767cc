"""Fixtures for end-to-end runs: the LLM simulator over real HTTP, a migrated metadata DB, and one
embedded deployment (real scheduler, triggerer, dag-processor and api-server) shared by every
OrchestrationEngine test, so the suite starts it once."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from include.llm_simulator.testing import SimulatorHandle, running_simulator
from tests.conftest import ROOT

SIM_KEY = "sk-simulator-test-key-0123456789abcdef"
# The 8-agents fan-in test wants a latency well above the gap Airflow leaves between two dependency
# levels: the triggerer records the event (its loop turns about once a second), the scheduler defers
# the next agent (0.3 s), the triggerer loads the new trigger on its next turn: 2.9 s measured on a
# 2-core machine at load average 6.
SLOW_LATENCY = 3.0
SLOW_KEY = "sk-embedded-test-key-0123456789"
# The README quick-start's key; the scripts' simulator accepts any key.
SCRIPT_KEY = "your-api-key"
ENGINE_CONN = "engine_test_openai"
SLOW_CONN = "embedded_test_openai"

# The governance tests' simulators (tests/e2e/test_governance.py): short latencies, one key and one
# connection each, so each test reads a log of its own requests only.
GOVERNANCE_LATENCY = 0.3
RATE_KEY = "sk-governance-rate-0123456789abcdef"
RATE_CONN = "governance_rate_openai"
RATE_RPM = 30  # the simulator enforces these per key; the engine config under test sets the same
RATE_CONCURRENT = 5
RATE_WINDOW_S = 60.0
BUDGET_KEY = "sk-governance-budget-0123456789abcdef"
BUDGET_CONN = "governance_budget_openai"
FAULT_KEY = "sk-governance-faults-0123456789abcdef"
FAULT_CONN = "governance_faults_openai"
FAULT_RATE = 0.2
FAULT_KINDS = ("429", "500", "503", "drop")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def simulator() -> Iterator[SimulatorHandle]:
    with running_simulator(api_key=SIM_KEY) as sim:
        yield sim


@pytest.fixture(scope="session")
def slow_simulator() -> Iterator[SimulatorHandle]:
    with running_simulator(latency=SLOW_LATENCY, api_key=SLOW_KEY) as sim:
        yield sim


@pytest.fixture(scope="session")
def script_simulator() -> Iterator[SimulatorHandle]:
    """For the quick-start and example scripts: any key is accepted."""
    with running_simulator() as sim:
        yield sim


@pytest.fixture(scope="session")
def rate_simulator() -> Iterator[SimulatorHandle]:
    """Enforces RATE_RPM requests per sliding window and RATE_CONCURRENT at once, per key."""
    with running_simulator(latency=GOVERNANCE_LATENCY, api_key=RATE_KEY, rpm=RATE_RPM,
                           max_concurrent=RATE_CONCURRENT, window_seconds=RATE_WINDOW_S) as sim:
        yield sim


@pytest.fixture(scope="session")
def budget_simulator() -> Iterator[SimulatorHandle]:
    with running_simulator(latency=GOVERNANCE_LATENCY, api_key=BUDGET_KEY) as sim:
        yield sim


@pytest.fixture(scope="session")
def fault_simulator() -> Iterator[SimulatorHandle]:
    """Answers FAULT_RATE of the requests with a transient fault (429 with retry-after, 500, 503 or a
    dropped connection), after its latency like a real overloaded server."""
    with running_simulator(latency=GOVERNANCE_LATENCY, latency_jitter=0.1, api_key=FAULT_KEY, fault_rate=FAULT_RATE,
                           fault_kinds=FAULT_KINDS, seed=19) as sim:
        yield sim


def openai_conn(base_url: str, key: str = SIM_KEY) -> str:
    return json.dumps({"conn_type": "openai", "password": key, "host": base_url})


@pytest.fixture(scope="session")
def deployment(simulator, slow_simulator, script_simulator, rate_simulator, budget_simulator, fault_simulator,
               tmp_path_factory) -> Iterator[object]:
    """The embedded deployment every engine test attaches to. The triggerer starts with every
    connection the tests' clients expose, so attaching never has to restart it; cron schedules are
    off so unpausing a scheduled DAG starts only the runs a test triggers."""
    from erp_agents.clients import OpenAIClient
    from erp_agents.stack import Deployment
    from tests.stack import reachable

    clients = [
        OpenAIClient(api_key=SIM_KEY, base_url=simulator.openai_base_url, conn_id=ENGINE_CONN),
        OpenAIClient(api_key=SLOW_KEY, base_url=slow_simulator.openai_base_url, conn_id=SLOW_CONN),
        OpenAIClient(api_key=SLOW_KEY, base_url=slow_simulator.openai_base_url, conn_id="openai_default"),
        OpenAIClient(api_key=SCRIPT_KEY, base_url=script_simulator.openai_base_url),
        OpenAIClient(api_key=RATE_KEY, base_url=rate_simulator.openai_base_url, conn_id=RATE_CONN),
        OpenAIClient(api_key=BUDGET_KEY, base_url=budget_simulator.openai_base_url, conn_id=BUDGET_CONN),
        OpenAIClient(api_key=FAULT_KEY, base_url=fault_simulator.openai_base_url, conn_id=FAULT_CONN),
    ]
    env = {f"AIRFLOW_CONN_{c.connection_id.upper()}": c.connection_json() for c in clients}
    env["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] = "False"
    # The spec DAGs only: the example scripts under dags/examples define at import the same DAG ids
    # they then register through the engine, which would put one dag_id in two bundles.
    dags = tmp_path_factory.mktemp("embedded-dags")
    (dags / "erp_agents_dags.py").write_text((ROOT / "dags" / "erp_agents_dags.py").read_text())
    (dags / "specs").symlink_to(ROOT / "dags" / "specs")
    running = Deployment(home=reachable(tmp_path_factory.mktemp("embedded-home")), dags_folder=dags, api_port=0)
    try:
        running.up(extra_env=env)
        sync_pools(running)
        yield running
    finally:
        running.down()


def sync_pools(deployment: object) -> None:
    """``python -m erp_agents pools sync`` against the deployment, as its operators would run it: the
    factory puts agent tasks in their provider's pool, and a task that must run on a worker (an agent
    that failed in the triggerer resumes there to fail) waits for a pool that does not exist forever."""
    state = deployment.layout.read_state()
    user, password = deployment.login()
    subprocess.run(
        [sys.executable, "-m", "erp_agents", "pools", "sync", "--api-url", state.api_url, "--username", user],
        env={**deployment.env(), "ERP_AGENTS_API_PASSWORD": password}, check=True, capture_output=True, timeout=180,
    )


@pytest.fixture
def sim(simulator: SimulatorHandle, monkeypatch: pytest.MonkeyPatch) -> SimulatorHandle:
    """The simulator, emptied, with Airflow's openai_default connection pointing at it."""
    simulator.reset()
    monkeypatch.setenv("AIRFLOW_CONN_OPENAI_DEFAULT", openai_conn(simulator.openai_base_url))
    return simulator
