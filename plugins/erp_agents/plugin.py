"""The AirflowPlugin that makes erp_agents visible to Airflow: its HTTP app and the dashboard in the UI nav.

The FastAPI app is imported on its first request, so the scheduler, triggerer and workers that also
load plugins never import the API side.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/erp-agents"


class _LazyApp:
    """An ASGI app that imports ``erp_agents.api.app`` when the API server first routes to it."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            from erp_agents.api.app import app

            self._app = app
        await self._app(scope, receive, send)


class ErpAgentsPlugin(AirflowPlugin):
    name = "erp_agents"
    fastapi_apps = [{"app": _LazyApp(), "url_prefix": URL_PREFIX, "name": "erp-agents"}]
    external_views = [
        {
            "name": "ERP agents",
            "href": f"{URL_PREFIX}/dashboard",
            "destination": "nav",
            "category": "browse",
            "url_route": "erp-agents",
        }
    ]
