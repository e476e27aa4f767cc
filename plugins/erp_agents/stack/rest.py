"""Airflow's REST API v2 as the engine uses it: log in, check a DAG, trigger a run, watch it, read
task states and XComs. The same client serves the embedded deployment and a remote one.

A URL that does not answer, or answers 401, fails at once with that reason (no retry loop).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from erp_agents.exceptions import ErpAgentsError

FINISHED = ("success", "failed")
POLL_S = 0.5


class AirflowApiError(ErpAgentsError):
    """The deployment's REST API refused or could not be reached; the message says which."""


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

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if self._token is None:
            self.login()
        for attempt in (1, 2):
            try:
                response = self._client.request(method, f"/api/v2{path}", headers={"Authorization": f"Bearer {self._token}"}, **kwargs)
            except httpx.HTTPError as exc:
                raise AirflowApiError(f"Airflow at {self.url} does not answer: {exc}") from None
            if response.status_code == 401 and attempt == 1:
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
        deadline = None if timeout is None else time.monotonic() + timeout
        while (state := self.run_state(dag_id, run_id)) not in FINISHED:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} of {dag_id} still {state} after {timeout:.0f} s")
            time.sleep(POLL_S)
        return state

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
