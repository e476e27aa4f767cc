"""The plugin's FastAPI app, mounted by Airflow's API server at ``/erp-agents``.

Airflow mounts plugin apps without its own auth, so every route here names a dependency from
``airflow.api_fastapi.core_api.security``: no credentials -> 401, a bad token -> 403. Status data is
read back through the REST API with the caller's own token, so Airflow's per-DAG authorization
(teams) decides which runs the caller sees; the run route also checks the DAG in its path.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from importlib import resources
from typing import Any

import httpx
from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
from airflow.api_fastapi.auth.managers.models.resource_details import AccessView, DagAccessEntity
from airflow.api_fastapi.core_api.security import requires_access_dag, requires_access_view
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from erp_agents.monitoring.airflow_api import AccessDenied, Credentials, NotFound
from erp_agents.monitoring.client import StatusClient
from erp_agents.monitoring.config import monitor_config
from erp_agents.monitoring.governance import GovernanceReader, deployment_reader
from erp_agents.monitoring.metrics import ledger_totals_source, metrics
from erp_agents.monitoring.status import StatusWindowError

log = logging.getLogger(__name__)
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

read_dags = Depends(requires_access_dag(method="GET"))
read_run = Depends(requires_access_dag(method="GET", access_entity=DagAccessEntity.RUN))
read_website = Depends(requires_access_view(AccessView.WEBSITE))
read_cluster = Depends(requires_access_view(AccessView.CLUSTER_ACTIVITY))


def api_base_url() -> str:
    """Where this deployment's REST API answers (``[api] base_url``)."""
    from airflow.configuration import conf

    return str(conf.get("api", "base_url", fallback="") or "http://localhost:8080").rstrip("/")


def default_window_hours() -> float:
    """``MonitorConfig.status_window_hours`` of the deployment's EngineConfig spec."""
    return float(monitor_config().status_window_hours)


@lru_cache(maxsize=1)
def governance_reader() -> GovernanceReader:
    """The ledger of the governance store; without one (or unreachable), XComs only."""
    reader = deployment_reader()
    if hasattr(reader, "engine"):
        metrics().observe_ledger(ledger_totals_source(reader.engine))
    return reader


def caller_token(request: Request) -> str | None:
    """The caller's own JWT (bearer header or the UI's cookie), forwarded to the REST API."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:]
    return request.cookies.get(COOKIE_NAME_JWT_TOKEN)


def status_client(request: Request) -> StatusClient:
    return StatusClient(
        api_base_url(),
        Credentials(token=caller_token(request)),
        governance=governance_reader(),
        ui_base_url="",
        via_plugin=False,
    )


async def _answer(coro: Any) -> Any:
    try:
        return await coro
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except StatusWindowError as exc:
        raise HTTPException(400, str(exc)) from None
    except AccessDenied as exc:
        raise HTTPException(exc.status_code, str(exc)) from None
    except httpx.HTTPError as exc:
        raise HTTPException(502, f"Airflow's REST API at {api_base_url()} did not answer: {exc!r}") from None


def create_app() -> FastAPI:
    # FastAPI's own /openapi.json, /docs and /redoc would be served with no auth: none of them.
    app = FastAPI(title="erp-agents", description="Status, metrics and dashboard of erp-agents workflows",
                  docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/api/status", dependencies=[read_dags])
    async def get_status(
        request: Request, window_hours: float | None = Query(None), workflow: str | None = Query(None)
    ) -> Any:
        """The seed's ``get_system_status`` JSON for the caller's workflows."""
        hours = window_hours if window_hours is not None else default_window_hours()
        return await _answer(status_client(request).system_status(hours, workflow))

    @app.get("/api/dashboard", dependencies=[read_dags])
    async def get_dashboard(request: Request, window_hours: float | None = Query(None)) -> Any:
        """Status plus the dashboard's series and tables."""
        hours = window_hours if window_hours is not None else default_window_hours()
        return await _answer(status_client(request).dashboard(hours))

    @app.get("/api/workflows/{dag_id}/runs/{run_id}", dependencies=[read_run])
    async def get_run(request: Request, dag_id: str, run_id: str) -> Any:
        """One run: per-agent state, tokens, cost, retries, limiter wait and timings."""
        return await _answer(status_client(request).workflow_status(dag_id, run_id))

    @app.get("/metrics", dependencies=[read_cluster])
    def get_metrics() -> Response:
        """Prometheus text of this process's meter and the ledger's totals."""
        governance_reader()
        return Response(metrics().prometheus_text(), media_type=PROMETHEUS_CONTENT_TYPE)

    @app.get("/dashboard", dependencies=[read_website], response_class=HTMLResponse)
    def get_dashboard_page() -> HTMLResponse:
        """The dashboard page (shown inside Airflow's UI as an external view)."""
        return HTMLResponse(resources.files("erp_agents.api").joinpath("dashboard.html").read_text())

    return app


app = create_app()
