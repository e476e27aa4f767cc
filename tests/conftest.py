"""Test configuration: an isolated AIRFLOW_HOME, set before anything imports Airflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_home = Path(os.environ.get("ERP_AGENTS_TEST_AIRFLOW_HOME") or tempfile.mkdtemp(prefix="erp-agents-airflow-"))
os.environ["AIRFLOW_HOME"] = str(_home)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_home / 'airflow.db'}")
os.environ.setdefault("AIRFLOW__LOGGING__BASE_LOG_FOLDER", str(_home / "logs"))
# A second DAG bundle for DAGs that tests write at run time (dag.test() syncs DAGs from bundles).
EXTRA_DAGS = _home / "test_dags"
(EXTRA_DAGS / "specs").mkdir(parents=True, exist_ok=True)
(EXTRA_DAGS / "erp_agents_dags.py").write_text((ROOT / "dags" / "erp_agents_dags.py").read_text())
_local_bundle = "airflow.dag_processing.bundles.local.LocalDagBundle"
os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps(
    [
        {"name": "dags-folder", "classpath": _local_bundle, "kwargs": {"path": str(ROOT / "dags")}},
        {"name": "test-dags", "classpath": _local_bundle, "kwargs": {"path": str(EXTRA_DAGS)}},
    ]
)
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT), str(ROOT / "plugins"), *filter(None, [os.environ.get("PYTHONPATH")])]
)


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """``airflow db migrate`` on the test AIRFLOW_HOME's SQLite database, once for the whole suite."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=os.environ, check=True, capture_output=True)
