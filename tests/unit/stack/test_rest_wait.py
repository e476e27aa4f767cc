"""How the REST client watches a run: Airflow's wait stream, or polling where a deployment has none."""

from __future__ import annotations

import json

import httpx
import pytest

from erp_agents.stack import rest
from erp_agents.stack.rest import AirflowApi, AirflowApiError


def _api(handler) -> AirflowApi:
    api = AirflowApi("http://airflow.test", "admin", "pw")
    api._client = httpx.Client(base_url=api.url, transport=httpx.MockTransport(handler))
    return api


def _token(request: httpx.Request) -> httpx.Response | None:
    if request.url.path == "/auth/token":
        return httpx.Response(201, json={"access_token": "t"})
    return None


def test_the_run_is_watched_through_one_stream_without_reading_the_run(monkeypatch):
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if (answer := _token(request)) is not None:
            return answer
        assert request.url.path == "/api/v2/dags/d/dagRuns/r/wait"
        body = "\n".join(json.dumps({"state": s}) for s in ("queued", "running", "success")) + "\n"
        return httpx.Response(200, content=body.encode())

    assert _api(handler).wait("d", "r", timeout=5) == "success"
    assert seen == ["/auth/token", "/api/v2/dags/d/dagRuns/r/wait"]  # no GET of the run itself


def test_without_the_stream_the_run_is_polled(monkeypatch):
    monkeypatch.setattr(rest, "POLL_S", 0.01)
    states = iter(["running", "running", "failed"])

    def handler(request: httpx.Request) -> httpx.Response:
        if (answer := _token(request)) is not None:
            return answer
        if request.url.path.endswith("/wait"):
            return httpx.Response(404, json={"detail": "Not Found"})
        return httpx.Response(200, json={"state": next(states)})

    assert _api(handler).wait("d", "r", timeout=5) == "failed"


def test_a_missing_run_and_a_refused_login_say_so():
    def missing(request: httpx.Request) -> httpx.Response:
        return _token(request) or httpx.Response(404, json={"detail": "Not Found"})

    with pytest.raises(LookupError):
        _api(missing).wait("d", "nope", timeout=5)

    def refused(request: httpx.Request) -> httpx.Response:
        return _token(request) or httpx.Response(401, json={"detail": "Unauthorized"})

    with pytest.raises(AirflowApiError, match="401"):
        _api(refused).wait("d", "r", timeout=5)
