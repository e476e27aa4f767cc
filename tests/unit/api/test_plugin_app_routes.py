"""Every route of the plugin's app checks Airflow auth: a route added without it fails here.

Airflow mounts plugin apps without its own auth, so a route is protected only through its own
dependencies: ``get_user`` (no or bad credentials -> 401/403) under a ``requires_access_*`` check.
tests/integration/test_api_auth.py sends the requests against a real API server.
"""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.core_api import security
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from erp_agents.api.app import create_app


def _calls(dependant: Any) -> list[Any]:
    """Every dependency callable of a route, nested ones included."""
    found = []
    for dep in dependant.dependencies:
        found.append(dep.call)
        found.extend(_calls(dep))
    return found


def _checks_auth(route: Any) -> bool:
    if not isinstance(route, APIRoute):  # a plain Starlette route (FastAPI's docs pages) has no dependencies
        return False
    calls = _calls(route.dependant)
    authorizes = any(getattr(c, "__module__", "") == security.__name__
                     and getattr(c, "__qualname__", "").startswith("requires_access_") for c in calls)
    return authorizes and security.get_user in calls


def test_every_route_checks_airflow_auth() -> None:
    routes = create_app().routes
    assert {route.path for route in routes} >= {"/api/status", "/metrics", "/dashboard"}
    assert [route.path for route in routes if not _checks_auth(route)] == []


def test_fastapi_docs_and_openapi_are_not_served() -> None:
    client = TestClient(create_app())
    for path in ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"):
        assert client.get(path).status_code == 404, path
