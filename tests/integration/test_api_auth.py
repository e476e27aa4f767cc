"""The plugin's routes under Airflow's real API server: every route needs credentials, and a user sees only
the DAGs Airflow lets them read (simple auth manager in multi-team mode: alice is on team_a only)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from erp_agents.stack.settings import Layout

from tests.stack import ROOT, AirflowStack, airflow_stack

SPEC = """kind: Workflow
version: 1
name: {name}
module: Finance
schedule: null
cost_budget: 1.00
agents:
  - name: only_agent
    module: Finance
    description: one agent
    llm_config: {{model: gpt-4o-mini, max_tokens: 50}}
    prompt_template: "Say hello"
"""
PASSWORD = "erp-agents-pw"
ROUTES = [
    "/erp-agents/api/status",
    "/erp-agents/api/dashboard",
    "/erp-agents/api/workflows/team_a_flow/runs/x",
    "/erp-agents/metrics",
    "/erp-agents/dashboard",
]


def _bundle(root: Path, name: str) -> Path:
    folder = root / name
    (folder / "specs").mkdir(parents=True)
    shutil.copy(ROOT / "dags" / "erp_agents_dags.py", folder / "erp_agents_dags.py")
    (folder / "specs" / f"{name}.yaml").write_text(SPEC.format(name=f"{name}_flow"))
    return folder


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    home = tmp_path_factory.mktemp("api-auth")
    (home / "passwords.json").write_text(json.dumps({"admin": PASSWORD, "alice": PASSWORD}))
    local = "airflow.dag_processing.bundles.local.LocalDagBundle"
    bundles = [
        {"name": team, "classpath": local, "kwargs": {"path": str(_bundle(home, team))}, "team_name": team}
        for team in ("team_a", "team_b")
    ]
    env = {
        "AIRFLOW__CORE__MULTI_TEAM": "True",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,alice:viewer:team_a",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__CORE__TEAM_NAME_CACHE_TTL": "0",
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
        "ERP_AGENTS_GOVERNANCE_DB_URL": f"sqlite:///{home / 'governance.db'}",
    }
    Layout(home).logs.mkdir(parents=True, exist_ok=True)  # up() without components does not create it
    # Teams must exist before the API server starts (its auth manager checks them), so: migrate only,
    # sync teams and serialize the DAGs, then start the API server alone.
    with airflow_stack(
        home, extra_env=env, components=(), sql_alchemy_conn=f"sqlite:///{home / 'airflow.db'}"
    ) as running:
        running.airflow("teams", "sync")
        running.airflow("dags", "reserialize")
        running.deployment.up(
            extra_env={"AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"), **env},
            components=("api-server",),
        )
        yield running


def _token(stack: AirflowStack, user: str) -> str:
    response = httpx.post(
        f"http://127.0.0.1:{stack.api_port}/auth/token",
        json={"username": user, "password": PASSWORD},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["access_token"])


@pytest.fixture(scope="module")
def admin(stack: AirflowStack) -> httpx.Client:
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{stack.api_port}",
        timeout=60,
        headers={"Authorization": f"Bearer {_token(stack, 'admin')}"},
    )
    for dag_id in ("team_a_flow", "team_b_flow"):
        response = client.post(
            f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "dag_run_id": "run1"}
        )
        assert response.status_code == 200, response.text
    return client


@pytest.fixture(scope="module")
def alice(stack: AirflowStack, admin: httpx.Client) -> httpx.Client:
    return httpx.Client(
        base_url=f"http://127.0.0.1:{stack.api_port}",
        timeout=60,
        headers={"Authorization": f"Bearer {_token(stack, 'alice')}"},
    )


@pytest.mark.parametrize("route", ROUTES)
def test_no_credentials_is_refused(stack: AirflowStack, route: str) -> None:
    response = httpx.get(f"http://127.0.0.1:{stack.api_port}{route}", timeout=30)
    assert response.status_code == 401, response.text


@pytest.mark.parametrize("route", ROUTES)
def test_a_forged_token_is_refused(stack: AirflowStack, route: str) -> None:
    response = httpx.get(
        f"http://127.0.0.1:{stack.api_port}{route}", timeout=30, headers={"Authorization": "Bearer not-a-jwt"}
    )
    assert response.status_code == 403, response.text


def test_admin_sees_every_workflow(admin: httpx.Client) -> None:
    status = admin.get("/erp-agents/api/status").raise_for_status().json()
    assert status["engine"]["total_workflows"] == 2
    assert status["monitoring"]["workflows"]["started"] == 2
    run = admin.get("/erp-agents/api/workflows/team_b_flow/runs/run1").raise_for_status().json()
    assert run["dag_id"] == "team_b_flow" and [a["task_id"] for a in run["agents"]] == ["finance.only_agent"]


def test_a_user_without_access_to_a_dag_does_not_see_its_runs(alice: httpx.Client) -> None:
    status = alice.get("/erp-agents/api/status").raise_for_status().json()
    assert status["engine"]["total_workflows"] == 1
    assert status["monitoring"]["workflows"]["started"] == 1
    assert set(status["cost_tracking"]["by_workflow"]) <= {"team_a_flow"}
    dashboard = alice.get("/erp-agents/api/dashboard").raise_for_status().json()
    assert {r["dag_id"] for r in dashboard["runs"]} == {"team_a_flow"}
    assert alice.get("/erp-agents/api/workflows/team_a_flow/runs/run1").status_code == 200
    refused = alice.get("/erp-agents/api/workflows/team_b_flow/runs/run1")
    assert refused.status_code == 403, refused.text
    assert alice.get("/erp-agents/api/status", params={"workflow": "team_b_flow"}).status_code == 404


def test_unknown_run_is_a_404_with_a_message(admin: httpx.Client) -> None:
    response = admin.get("/erp-agents/api/workflows/team_a_flow/runs/no_such_run")
    assert response.status_code == 404
    assert "no_such_run" in response.json()["detail"]


@pytest.mark.parametrize("hours", [0, 90 * 24 + 1])
def test_a_bad_window_is_a_400(admin: httpx.Client, hours: int) -> None:
    response = admin.get("/erp-agents/api/status", params={"window_hours": hours})
    assert response.status_code == 400 and "status window" in response.json()["detail"]


def test_metrics_and_dashboard_page_with_credentials(admin: httpx.Client) -> None:
    metrics = admin.get("/erp-agents/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    page = admin.get("/erp-agents/dashboard")
    assert page.status_code == 200 and "ERP agents" in page.text


def test_the_dashboard_is_in_the_ui_navigation(admin: httpx.Client) -> None:
    plugins = admin.get("/api/v2/plugins").raise_for_status().json()["plugins"]
    ours = next(p for p in plugins if p["name"] == "erp_agents")
    assert ours["external_views"][0]["href"] == "/erp-agents/dashboard"
    assert ours["fastapi_apps"][0]["url_prefix"] == "/erp-agents"
