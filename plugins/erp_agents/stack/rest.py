"""Airflow's REST API v2 as the engine uses it: log in, check a DAG, trigger a run, watch it, read
task states and XComs. The same client serves the embedded deployment and a remote one.

A URL that does not answer, or answers 401, fails at once with that reason (no retry loop).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import httpx

from erp_agents.exceptions import ErpAgentsError

FINISHED = ("success", "failed")
POLL_S = 0.5
STREAM_S = 60.0  # one wait stream at most this long, then a new one


def api_health(api_url: str) -> dict[str, Any] | None:
    """The api-server's /api/v2/monitor/health answer, or None when it does not answer."""
    try:
        with urllib.request.urlopen(f"{api_url}/api/v2/monitor/health", timeout=3) as response:
            return dict(json.loads(response.read()))
    except (OSError, ValueError, urllib.error.URLError):
        return None


class AirflowApiError(ErpAgentsError):
    """The deployment's REST API refused or could not be reached; the message says which."""


class _NoStream(Exception):
    """The deployment has no run-wait stream: watch by polling."""


@dataclass
class AirflowApi:
    """A logged-in client of one Airflow deployment (simple auth manager or any JWT ``/auth/token``)."""

    url: str
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        self._client = httpx.Client(base_url=self.url, timeout=self.timeout)
        self._token: str | None = None
        self._streams = True  # until the deployment turns out to have no run-wait stream

    def close(self) -> None:
        self._client.close()

    def login(self) -> None:
        try:
            if self.username is None:
                response = self._client.get("/auth/token")  # simple auth manager with all_admins
            else:
                response = self._client.post("/auth/token", json={"username": self.username, "password": self.password})
        except httpx.HTTPError as exc:
            raise AirflowApiError(f"Airflow at {self.url} does not answer: {exc}") from None
        if response.status_code in (401, 403):
            raise AirflowApiError(f"Airflow at {self.url} refused the login of {self.username!r}: HTTP {response.status_code}")
        if response.status_code >= 400:
            raise AirflowApiError(f"login at {self.url}/auth/token failed: HTTP {response.status_code} {response.text[:200]}")
        self._token = response.json()["access_token"]

    def request(self, method: str, path: str, *, stream: bool = False, **kwargs: Any) -> httpx.Response:
        """One authorized call (logged in again once when the token expired); ``stream``: the body is
        read by the caller, who closes the response."""
        if self._token is None:
            self.login()
        for attempt in (1, 2):
            try:
                built = self._client.build_request(method, f"/api/v2{path}",
                                                   headers={"Authorization": f"Bearer {self._token}"}, **kwargs)
                response = self._client.send(built, stream=stream)
            except httpx.HTTPError as exc:
                raise AirflowApiError(f"Airflow at {self.url} does not answer: {exc}") from None
            if response.status_code == 401 and attempt == 1:
                response.close()
                self.login()  # the token expired
                continue
            if response.status_code == 401:
                raise AirflowApiError(f"Airflow at {self.url} answers 401 Unauthorized to {path}")
            return response
        raise AssertionError("unreachable")

    def get(self, path: str, **params: Any) -> Any:
        response = self.request("GET", path, params=params or None)
        if response.status_code == 404:
            raise LookupError(path)
        _raise_for(response, path)
        return response.json()

    # -- DAGs ---------------------------------------------------------------------------------

    def dag(self, dag_id: str) -> dict[str, Any] | None:
        try:
            return dict(self.get(f"/dags/{dag_id}"))
        except LookupError:
            return None

    def dag_edges(self, dag_id: str) -> dict[str, list[str]]:
        """Each task id with its sorted downstream task ids, as the deployment serialized the DAG."""
        tasks = self.get(f"/dags/{dag_id}/tasks")["tasks"]
        return {t["task_id"]: sorted(t.get("downstream_task_ids") or []) for t in tasks}

    def reparse(self, dag_id: str) -> None:
        """Ask the dag-processor to parse the DAG's file again now."""
        token = self.get(f"/dags/{dag_id}/details")["file_token"]
        _raise_for(self.request("PUT", f"/parseDagFile/{token}"), "parseDagFile")

    def unpause(self, dag_id: str) -> None:
        _raise_for(self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": False}), f"unpause {dag_id}")

    def connection_exists(self, conn_id: str) -> bool:
        response = self.request("GET", f"/connections/{conn_id}")
        if response.status_code == 404:
            return False
        _raise_for(response, f"connection {conn_id}")
        return True

    # -- runs ---------------------------------------------------------------------------------

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None, logical_date: str | None = None) -> str:
        body = {"logical_date": logical_date, "conf": conf or {}}
        response = self.request("POST", f"/dags/{dag_id}/dagRuns", json=body)
        _raise_for(response, f"trigger {dag_id}")
        return str(response.json()["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.get(f"/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def wait(self, dag_id: str, run_id: str, timeout: float | None = None) -> str:
        """Until the run finishes; its final state.

        Watched through Airflow's ``dagRuns/{run_id}/wait`` stream, which reads the run's row once per
        interval. Polling ``GET dagRuns/{run_id}`` instead made Airflow 3.3 load every task instance of
        the run to list its DAG versions (the list endpoint deserializes the whole DAG instead): for a
        500-agent run about a third of a core of api-server CPU, taken from the run being watched.
        Deployments without the stream (it is marked experimental) are polled."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                if not self._streams:
                    raise _NoStream
                state = self._stream_state(dag_id, run_id, deadline)
            except _NoStream:
                self._streams = False
                state = self.run_state(dag_id, run_id)
                if state not in FINISHED:
                    time.sleep(POLL_S)
            if state in FINISHED:
                return state
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} of {dag_id} still {state} after {timeout:.0f} s")

    def _stream_state(self, dag_id: str, run_id: str, deadline: float | None) -> str:
        """The run's state from one wait stream: at the run's end, at the deadline, or after STREAM_S."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/wait"
        ends = time.monotonic() + STREAM_S if deadline is None else min(deadline, time.monotonic() + STREAM_S)
        state = "queued"
        response = self.request("GET", path, stream=True, params={"interval": POLL_S},
                                timeout=httpx.Timeout(self.timeout, read=self.timeout + POLL_S))
        try:
            if response.status_code == 404 and not self._run_exists(dag_id, run_id):
                raise LookupError(f"no run {run_id} of {dag_id}")
            if response.status_code != 200:
                raise _NoStream
            for line in response.iter_lines():
                if line.strip():
                    state = str(json.loads(line)["state"])
                if state in FINISHED or time.monotonic() > ends:
                    break
        except httpx.HTTPError as exc:
            raise AirflowApiError(f"Airflow at {self.url} does not answer: {exc}") from None
        finally:
            response.close()
        return state

    def _run_exists(self, dag_id: str, run_id: str) -> bool:
        try:
            self.run_state(dag_id, run_id)
        except LookupError:
            return False
        return True

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        items = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=1000)["task_instances"]
        return {ti["task_id"]: ti["state"] for ti in items}

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """The XCom as stored (JSON text or a value); None when the task pushed none."""
        try:
            return self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}")["value"]
        except LookupError:
            return None


def _raise_for(response: httpx.Response, what: str) -> None:
    if response.status_code >= 400:
        raise AirflowApiError(f"{what}: HTTP {response.status_code} {response.text[:300]}")
