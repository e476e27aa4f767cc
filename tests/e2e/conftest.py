"""Fixtures for end-to-end runs: the LLM simulator over real HTTP and a migrated metadata DB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from include.llm_simulator.testing import SimulatorHandle, running_simulator

SIM_KEY = "sk-simulator-test-key-0123456789abcdef"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def simulator() -> Iterator[SimulatorHandle]:
    with running_simulator(api_key=SIM_KEY) as sim:
        yield sim


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """``airflow db migrate`` on the test AIRFLOW_HOME's SQLite database (set in tests/conftest.py)."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=os.environ, check=True, capture_output=True)


def openai_conn(base_url: str, key: str = SIM_KEY) -> str:
    return json.dumps({"conn_type": "openai", "password": key, "host": base_url})


@pytest.fixture
def sim(simulator: SimulatorHandle, monkeypatch: pytest.MonkeyPatch) -> SimulatorHandle:
    """The simulator, emptied, with Airflow's openai_default connection pointing at it."""
    simulator.reset()
    monkeypatch.setenv("AIRFLOW_CONN_OPENAI_DEFAULT", openai_conn(simulator.openai_base_url))
    return simulator
