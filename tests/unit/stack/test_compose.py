"""docker-compose.yaml is what ``erp_agents.stack.compose`` renders from the cluster's settings, a
valid Compose file (compose-spec JSON Schema, vendored from compose-spec/compose-spec
schema/compose-spec.json at commit 170098ba07d9f53c383a41bfd4c5166b0a4529a6), and the same
topology and Airflow settings as the local cluster."""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from erp_agents.spec.discovery import load_spec_file
from erp_agents.spec.models import EngineConfig
from erp_agents.stack import compose
from erp_agents.stack.cluster import Cluster, ClusterState
from erp_agents.stack.cluster_settings import (
    AIRFLOW_COMPONENTS, COMPONENTS, TRIGGERERS, WORKERS, cluster_env, command,
)
from tests.conftest import ROOT

SCHEMA = json.loads((Path(__file__).with_name("compose_spec.json")).read_text())
COMPOSE_FILE = ROOT / "docker-compose.yaml"
# Settings whose values are addresses, folders or secrets: the only ones that may differ between
# the local cluster and Compose.
ENDPOINT_KEYS = {
    "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CORE__PLUGINS_FOLDER", "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "AIRFLOW__API__BASE_URL",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__BROKER_URL", "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", "ERP_AGENTS_GOVERNANCE_DB_URL", "ERP_AGENTS_ENGINE_CONFIG",
    "AIRFLOW_CONN_OPENAI_DEFAULT", "PYTHONPATH",
}
# What only the local processes set: they share one host, one AIRFLOW_HOME and one log folder.
LOCAL_ONLY = {
    "AIRFLOW_HOME", "AIRFLOW__API__HOST", "AIRFLOW__API__PORT", "AIRFLOW__LOGGING__BASE_LOG_FOLDER",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT",
    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",
}


@pytest.fixture(scope="module")
def committed() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE_FILE.read_text()))


def airflow_services(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in data["services"].items() if name in AIRFLOW_COMPONENTS or name == "airflow-init"}


def test_committed_file_is_the_rendered_one() -> None:
    assert COMPOSE_FILE.read_text() == compose.render(), (
        "docker-compose.yaml is out of date: python -m erp_agents.stack.compose > docker-compose.yaml")


def test_every_airflow_container_gets_the_cluster_settings(committed: dict[str, Any]) -> None:
    services = airflow_services(committed)
    assert set(services) == {*AIRFLOW_COMPONENTS, "airflow-init"}
    for name, service in services.items():
        assert service["environment"] == compose.airflow_env() == cluster_env(compose.ENDPOINTS), name


def test_the_file_is_valid_against_the_compose_specification(committed: dict[str, Any]) -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.validate(committed, SCHEMA, cls=jsonschema.Draft7Validator)


@pytest.mark.parametrize("break_it", [
    lambda d: d["services"]["scheduler"].update(commnd=["airflow", "scheduler"]),
    lambda d: d["services"]["worker-1"].update(depends_on=5),
    lambda d: d["services"]["redis"].update(image=["redis:7.4"]),
])
def test_the_schema_rejects_a_broken_file(committed: dict[str, Any], break_it: Any) -> None:
    broken = copy.deepcopy(committed)
    break_it(broken)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA, cls=jsonschema.Draft7Validator)


def test_topology_matches_the_local_cluster(committed: dict[str, Any]) -> None:
    services = committed["services"]
    assert set(COMPONENTS) <= set(services)
    assert len(TRIGGERERS) == 2 and len(WORKERS) == 2
    for name in AIRFLOW_COMPONENTS:
        assert services[name]["command"][: len(command(name))] == list(command(name)), name
        assert services[name]["image"] == compose.IMAGE and services[name]["build"] == "."
        assert "healthcheck" in services[name], name
    hostnames = {services[w]["command"][services[w]["command"].index("--celery-hostname") + 1] for w in WORKERS}
    assert hostnames == {"worker-1@%h", "worker-2@%h"}
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for config in service.get("configs", []):
            assert config["source"] in committed["configs"]
        for volume in service.get("volumes", []):
            assert volume.split(":")[0] in committed["volumes"]


def test_the_engine_config_puts_the_limiter_on_redis(committed: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "engine.yaml"
    path.write_text(committed["configs"]["erp-engine"]["content"])
    engine = load_spec_file(path)
    assert isinstance(engine, EngineConfig)
    assert engine.limiter.backend == "redis"
    assert engine.limiter.url == compose.ENDPOINTS.limiter_url != compose.ENDPOINTS.broker_url


def test_the_local_cluster_differs_only_in_endpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Connections in the caller's environment reach the cluster by design; this compares settings only.
    for key in [k for k in os.environ if k.startswith("AIRFLOW_CONN_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "left_by_an_earlier_dag_test")  # task context must not pass through
    cluster = Cluster(home=tmp_path)
    state = ClusterState(home=str(tmp_path), api_port=8088, simulator_port=8765, simulator_latency=0.2,
                         log_ports={name: 9000 + i for i, name in enumerate((*TRIGGERERS, *WORKERS))})
    shared = compose.airflow_env()
    for name in (*AIRFLOW_COMPONENTS, None):
        local = cluster.env(state, name)
        differing = {key for key in shared if local.get(key) != shared[key]}
        assert differing <= ENDPOINT_KEYS, (name, differing - ENDPOINT_KEYS)
        extra = {key for key in local if key.startswith("AIRFLOW") and key not in shared}
        assert extra <= LOCAL_ONLY, (name, extra - LOCAL_ONLY)


def test_every_variable_the_file_reads_is_documented() -> None:
    used = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", COMPOSE_FILE.read_text()))  # $${X}: the container's own
    documented = set(re.findall(r"^#? ?([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    assert used == {"AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_CONN_OPENAI_DEFAULT", "LLM_SIM_LATENCY"}
    assert used <= documented, used - documented


def test_the_image_is_the_airflow_version_the_project_pins() -> None:
    pinned = re.search(r"^apache-airflow==(\S+)$", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
    assert pinned is not None
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"FROM apache/airflow:{pinned.group(1)}-python3.11" in dockerfile
    assert compose.IMAGE.endswith(f":{pinned.group(1)}")


def test_cluster_commands_register_under_the_package_cli() -> None:
    import argparse

    from erp_agents.stack import cluster

    parser = argparse.ArgumentParser()
    cluster.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["cluster", "up", "--api-port", "0", "--sim-latency", "1.5"])
    assert (args.func, args.api_port, args.sim_latency) == (cluster._up, 0, 1.5)
    assert parser.parse_args(["cluster", "down", "--home", "/tmp/x"]).func is cluster._down
    assert parser.parse_args(["cluster", "ps"]).func is cluster._ps
