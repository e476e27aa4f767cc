"""The dashboard in a real headless Chromium, against a real deployment that ran basic_workflow on the
LLM simulator: empty state first, then the run's numbers, equal to the status API's; an unauthenticated
visit is refused; screenshots land in the test's tmp dir."""

from __future__ import annotations

import time

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from erp_agents.stack.settings import Layout

from tests.e2e.conftest import openai_conn
from tests.stack import AirflowStack, airflow_stack

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AGENTS = ("finance.data_processor", "finance.data_analyzer", "finance.report_generator")


@pytest.fixture(scope="module")
def stack(simulator: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    home = tmp_path_factory.mktemp("dashboard")
    env = {"AIRFLOW_CONN_OPENAI_DEFAULT": openai_conn(simulator.openai_base_url)}
    Layout(home).logs.mkdir(parents=True, exist_ok=True)  # up() on SQLite does not create it
    with airflow_stack(home, extra_env=env, sql_alchemy_conn=f"sqlite:///{home / 'airflow.db'}") as running:
        running.wait_dags(["basic_workflow"])
        running.unpause("basic_workflow")
        yield running


@pytest.fixture(scope="module")
def token(stack: AirflowStack) -> str:
    user, password = stack.deployment.login()
    response = httpx.post(
        f"http://127.0.0.1:{stack.api_port}/auth/token",
        json={"username": user, "password": password},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["access_token"])


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Debian's chromium is not installed at {CHROMIUM} (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield launched
        launched.close()


def _page(browser: Any, stack: AirflowStack, token: str | None) -> Any:
    context = browser.new_context(viewport={"width": 1400, "height": 1800})
    if token:
        context.add_cookies([{"name": "_token", "value": token, "url": f"http://127.0.0.1:{stack.api_port}"}])
    return context.new_page()


def test_dashboard_empty_then_with_a_real_run(
    stack: AirflowStack, token: str, browser: Any, simulator: Any, tmp_path: Path
) -> None:
    base = f"http://127.0.0.1:{stack.api_port}"
    refused = _page(browser, stack, None).goto(f"{base}/erp-agents/dashboard")
    assert refused is not None and refused.status in (401, 403)
    refused_api = _page(browser, stack, None).goto(f"{base}/erp-agents/api/dashboard")
    assert refused_api is not None and refused_api.status in (401, 403)

    page = _page(browser, stack, token)
    page.goto(f"{base}/erp-agents/dashboard")
    page.wait_for_selector("body[data-loaded=true]", timeout=30_000)
    assert page.is_visible("#empty") and not page.is_visible("#content")
    page.screenshot(path=str(tmp_path / "dashboard-empty.png"), full_page=True)

    simulator.reset()
    stack.airflow("dags", "trigger", "basic_workflow", "--run-id", "dashboard_run")
    assert stack.wait_run("basic_workflow", "dashboard_run", timeout=240) == "success"

    def read_status() -> dict:
        return httpx.get(f"{base}/erp-agents/api/status", headers={"Authorization": f"Bearer {token}"},
                         timeout=60).raise_for_status().json()

    # The empty page's status may still be cached when a run this short ends: wait for the run to show.
    deadline = time.monotonic() + 30
    status = read_status()
    while status["monitoring"]["workflows"]["completed"] != 1 and time.monotonic() < deadline:
        time.sleep(1)
        status = read_status()
    assert status["monitoring"]["workflows"]["completed"] == 1
    assert status["monitoring"]["agents"]["executed"] == len(AGENTS)
    requests = simulator.requests()
    assert status["rate_limiting"]["total_requests"] == len(requests)
    assert status["cost_tracking"]["total_tokens"] == sum(
        r["usage"]["input_tokens"] + r["usage"]["output_tokens"] for r in requests
    )
    assert status["cost_tracking"]["total_cost"] > 0

    # the page polls every 5 s: wait for it to pick the run up by itself (live, no reload)
    page.wait_for_function(
        "document.getElementById('workflows-completed').textContent === '1'", timeout=30_000
    )
    shown = {
        i: page.text_content(f"#{i}")
        for i in (
            "workflows-started",
            "workflows-completed",
            "workflows-failed",
            "agents-executed",
            "agents-failed",
            "total-requests",
            "total-tokens",
            "total-cost",
        )
    }
    assert shown == {
        "workflows-started": str(status["monitoring"]["workflows"]["started"]),
        "workflows-completed": "1",
        "workflows-failed": "0",
        "agents-executed": str(len(AGENTS)),
        "agents-failed": "0",
        "total-requests": str(status["rate_limiting"]["total_requests"]),
        "total-tokens": str(status["cost_tracking"]["total_tokens"]),
        "total-cost": f"{status['cost_tracking']['total_cost']:.6f}",
    }
    links = page.eval_on_selector_all("#agents a", "els => els.map(e => e.getAttribute('href'))")
    assert sorted(links) == sorted(f"/dags/basic_workflow/runs/dashboard_run/tasks/{a}" for a in AGENTS)
    assert page.locator("#spend-chart rect").count() >= 1
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000

    run = (
        httpx.get(
            f"{base}/erp-agents/api/workflows/basic_workflow/runs/dashboard_run",
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        .raise_for_status()
        .json()
    )
    assert run["outcome"] == "completed" and [a["state"] for a in run["agents"]] == ["success"] * len(AGENTS)
    assert round(sum(a["cost"] for a in run["agents"]), 6) == status["cost_tracking"]["total_cost"]


def test_the_dashboard_is_a_page_of_airflows_ui(
    stack: AirflowStack, token: str, browser: Any, tmp_path: Path
) -> None:
    page = _page(browser, stack, token)
    page.goto(f"http://127.0.0.1:{stack.api_port}/plugin/erp-agents")
    frame = page.wait_for_selector("iframe", timeout=60_000)
    assert frame is not None and (frame.get_attribute("src") or "").endswith("/erp-agents/dashboard")
    inner = frame.content_frame()
    assert inner is not None
    inner.wait_for_selector("body[data-loaded=true]", timeout=30_000)
    page.screenshot(path=str(tmp_path / "airflow-ui-dashboard.png"), full_page=True)
