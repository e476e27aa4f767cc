"""Read-only access to Airflow's REST API v2: workflows, DAG runs, agent task instances and XComs.

Status reads go through the REST API (never the metadata tables), so they work against the embedded
deployment and a remote one alike, and Airflow's own authorization decides what a caller sees: a
user without access to a DAG gets no runs of it. The batch list endpoints take a body page size that
is not capped by ``[api] maximum_page_limit``, so 10,000 task instances come back in one request.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from erp_agents.monitoring.status import RunRow, TaskRow

WORKFLOW_TAG = "erp-agents"
PAGE = 10_000


class NotFound(LookupError):
    """The DAG, run or XCom does not exist (or the caller may not see it)."""


class AccessDenied(PermissionError):
    """The REST API refused the caller's credentials (401/403)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class Credentials:
    """A bearer token, or a user and password exchanged for one at ``/auth/token``; ``all_admins`` asks
    the simple auth manager's credential-less ``GET /auth/token`` (only when everyone is admin)."""

    token: str | None = None
    username: str | None = None
    password: str | None = None
    all_admins: bool = False


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def run_row(item: dict[str, Any]) -> RunRow:
    return RunRow(
        dag_id=item["dag_id"],
        run_id=item["dag_run_id"],
        state=str(item["state"]),
        start_date=_dt(item.get("start_date")),
        end_date=_dt(item.get("end_date")),
    )


def task_row(item: dict[str, Any]) -> TaskRow:
    return TaskRow(
        dag_id=item["dag_id"],
        run_id=item["dag_run_id"],
        task_id=item["task_id"],
        state=item.get("state"),
        try_number=int(item.get("try_number") or 0) or 1,
        duration=item.get("duration"),
        start_date=_dt(item.get("start_date")),
        end_date=_dt(item.get("end_date")),
        map_index=int(item.get("map_index", -1)),
    )


class AirflowApi:
    """An async client of one Airflow deployment's REST API, bound to one caller's credentials."""

    def __init__(
        self,
        base_url: str,
        credentials: Credentials | None = None,
        *,
        timeout: float = 30.0,
        concurrency: int = 8,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials or Credentials()
        self._timeout = timeout
        self._transport = transport
        self._token = self.credentials.token
        self._gate = asyncio.Semaphore(concurrency)
        self._client: httpx.AsyncClient | None = None
        self.server_time: datetime | None = None  # from the last response's Date header

    async def __aenter__(self) -> AirflowApi:
        self._client = httpx.AsyncClient(
            base_url=self.base_url, timeout=self._timeout, transport=self._transport
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _headers(self) -> dict[str, str]:
        if self._token is None and self.credentials.username:
            assert self._client is not None
            response = await self._client.post(
                "/auth/token",
                json={"username": self.credentials.username, "password": self.credentials.password or ""},
            )
            self._raise(response, "/auth/token")
            self._token = response.json()["access_token"]
        elif self._token is None and self.credentials.all_admins:
            assert self._client is not None
            response = await self._client.get("/auth/token")
            self._raise(response, "/auth/token")
            self._token = response.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    @staticmethod
    def _raise(response: httpx.Response, what: str) -> None:
        if response.status_code in (401, 403):
            raise AccessDenied(response.status_code, f"{what}: {response.status_code} {response.text[:200]}")
        if response.status_code == 404:
            detail = (
                response.json().get("detail") if "json" in response.headers.get("content-type", "") else None
            )
            raise NotFound(str(detail) if detail and detail != "Not Found" else f"{what}: not found")
        response.raise_for_status()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        if self._client is None:
            raise RuntimeError("use AirflowApi as an async context manager")
        async with self._gate:
            response = await self._client.request(method, path, headers=await self._headers(), **kwargs)
        if date := response.headers.get("date"):
            self.server_time = parsedate_to_datetime(date)
        self._raise(response, path)
        return response.json()

    async def healthy(self) -> bool:
        """The scheduler's health as the API server reports it (no credentials needed)."""
        try:
            data = await self._call("GET", "/api/v2/monitor/health")
        except (httpx.HTTPError, LookupError, PermissionError):
            return False
        return bool(data.get("scheduler", {}).get("status") == "healthy")

    async def workflows(self) -> list[str]:
        """The DAG ids the factory made (tag ``erp-agents``) that the caller may read."""
        dag_ids: list[str] = []
        offset = 0
        while True:
            data = await self._call(
                "GET",
                "/api/v2/dags",
                params={"tags": WORKFLOW_TAG, "limit": 100, "offset": offset, "exclude_stale": "false"},
            )
            dag_ids += [d["dag_id"] for d in data["dags"]]
            offset += len(data["dags"])
            if not data["dags"] or offset >= data["total_entries"]:
                return dag_ids

    async def _batch(self, path: str, key: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            data = await self._call(
                "POST", path, json={**body, "page_offset": len(items), "page_limit": PAGE}
            )
            page = data[key]
            items += page
            if not page or len(items) >= data["total_entries"]:
                return items

    async def runs(self, dag_ids: Sequence[str], since: datetime, until: datetime) -> list[RunRow]:
        """Runs of ``dag_ids`` due (``run_after``) within the window."""
        if not dag_ids:
            return []
        body = {
            "dag_ids": list(dag_ids),
            "run_after_gte": since.isoformat(),
            "run_after_lte": until.isoformat(),
        }
        return [run_row(r) for r in await self._batch("/api/v2/dags/~/dagRuns/list", "dag_runs", body)]

    async def run(self, dag_id: str, run_id: str) -> RunRow:
        return run_row(await self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"))

    async def task_instances(
        self,
        dag_ids: Sequence[str],
        since: datetime | None = None,
        until: datetime | None = None,
        run_ids: Sequence[str] | None = None,
    ) -> list[TaskRow]:
        """Task instances of ``dag_ids`` in runs due within the window (or of the given runs)."""
        if not dag_ids:
            return []
        body: dict[str, Any] = {"dag_ids": list(dag_ids)}
        if since is not None:
            body["run_after_gte"] = since.isoformat()
        if until is not None:
            body["run_after_lte"] = until.isoformat()
        if run_ids:
            body["dag_run_ids"] = list(run_ids)
        items = await self._batch("/api/v2/dags/~/dagRuns/~/taskInstances/list", "task_instances", body)
        return [task_row(t) for t in items]

    async def task_instances_updated_since(
        self, since: datetime, max_rows: int = 500
    ) -> list[TaskRow] | None:
        """Task instances (of every DAG the caller may read) changed since ``since``, 100 per page (the
        GET endpoint's cap); None when more than ``max_rows`` changed (a full listing is cheaper then)."""
        rows: list[TaskRow] = []
        while True:
            data = await self._call(
                "GET",
                "/api/v2/dags/~/dagRuns/~/taskInstances",
                params={
                    "updated_at_gte": since.isoformat(),
                    "limit": 100,
                    "offset": len(rows),
                    "order_by": "id",
                },
            )
            if data["total_entries"] > max_rows:
                return None
            page = data["task_instances"]
            rows += [task_row(t) for t in page]
            if not page or len(rows) >= data["total_entries"]:
                return rows

    async def xcom(self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int = -1) -> Any:
        """One XCom value, decoded from its stored JSON; NotFound when absent."""
        data = await self._call(
            "GET",
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
            params={"map_index": map_index},
        )
        value = data.get("value")
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    async def xcoms(self, keys: Sequence[tuple[str, str, str, str]]) -> dict[tuple[str, str, str, str], Any]:
        """Many XComs at once (bounded concurrency); missing ones are left out."""

        async def one(k: tuple[str, str, str, str]) -> tuple[tuple[str, str, str, str], Any]:
            try:
                return k, await self.xcom(*k)
            except NotFound:
                return k, None

        return {k: v for k, v in await asyncio.gather(*(one(k) for k in keys)) if v is not None}
