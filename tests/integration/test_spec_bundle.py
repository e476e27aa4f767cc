"""Broken specs under Airflow's real DAG processor: each is its own import error, the others keep their DAGs."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from tests.conftest import ROOT
from tests.stack import airflow_stack

BROKEN_DEP = "[data_analyser_x]"


def _wait(predicate, what: str, stack, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack._check_alive()
        if result := predicate():
            return result
        time.sleep(1)
    raise TimeoutError(f"{what}\n{stack.log_of('dag-processor')[-3000:]}")


@pytest.fixture
def processor(tmp_path):
    specs = tmp_path / "specs"
    specs.mkdir()
    for name in ("basic_workflow.yaml", "erp_nightly.yaml"):
        shutil.copy(ROOT / "dags/specs" / name, specs / name)
    basic = (ROOT / "dags/specs/basic_workflow.yaml").read_text()
    (specs / "broken.yaml").write_text(
        basic.replace("name: basic_workflow", "name: broken_workflow").replace("[data_analyzer]", BROKEN_DEP)
    )
    bundles = [{"name": "erp-specs", "classpath": "erp_agents.bundle.SpecBundle",
                "kwargs": {"specs_path": str(specs), "refresh_interval": 1}}]
    env = {
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(tmp_path / "bundles"),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "1",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "1",
    }
    with airflow_stack(tmp_path / "home", extra_env=env, components=("dag-processor",)) as stack:
        yield stack, specs


def _errors(stack) -> dict[str, str]:
    return {r["filename"]: r["stacktrace"] for r in stack.query("SELECT filename, stacktrace FROM import_error")}


def _live_dags(stack) -> set[str]:
    rows = stack.query("SELECT dag_id, is_stale FROM dag WHERE bundle_name = 'erp-specs'")
    return {r["dag_id"] for r in rows if not r["is_stale"]}


def test_each_broken_spec_is_its_own_import_error(processor):
    stack, specs = processor
    _wait(lambda: {"basic_workflow", "erp_nightly"} <= _live_dags(stack) and "broken.py" in _errors(stack),
          "good DAGs and the broken spec's import error never both appeared", stack)
    error = _errors(stack)["broken.py"]
    assert f"{specs / 'broken.yaml'}:47:20: agents[2].dependencies[0]: unknown dependency 'data_analyser_x'" in error
    assert list(_errors(stack)) == ["broken.py"]
    assert "broken_workflow" not in _live_dags(stack)

    # Fixing the spec clears its error and adds its DAG; breaking another hides only that one.
    (specs / "broken.yaml").write_text((specs / "broken.yaml").read_text().replace(BROKEN_DEP, "[data_analyzer]"))
    basic_text = (specs / "basic_workflow.yaml").read_text()
    (specs / "basic_workflow.yaml").write_text(basic_text + "surprise: 1\n")
    surprise_line = basic_text.count("\n") + 1
    _wait(lambda: _live_dags(stack) == {"erp_nightly", "broken_workflow"} and list(_errors(stack)) == ["basic_workflow.py"],
          "fix/break was not picked up", stack)
    assert f"{specs / 'basic_workflow.yaml'}:{surprise_line}:1: surprise: unknown key" in _errors(stack)["basic_workflow.py"]
