"""StatusClient: ``get_system_status`` and ``get_workflow_status`` against one Airflow deployment.

Runs and task instances come from the REST API as the caller (so Airflow's permissions apply);
tokens and money come from the ledger when there is one, else from the XComs agents push (the
``workflow_summary`` return value of a finished run, the ``cost_record`` of each agent task of a run
in flight). A finished run's summary does not change, so it is cached per process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

import httpx

from erp_agents.costs.record import COST_XCOM_KEY
from erp_agents.factory.plan import SUMMARY_TASK_ID
from erp_agents.monitoring.airflow_api import AirflowApi, Credentials, NotFound
from erp_agents.monitoring.governance import GovernanceReader, NoGovernance
from erp_agents.monitoring.status import (
    AgentUsage,
    RunRow,
    StatusInput,
    TaskRow,
    spend_series,
    status_window,
    system_status,
    workflow_status,
)
from erp_agents.monitoring.task_cache import TASKS

T = TypeVar("T")
FINISHED_RUN_STATES = ("success", "failed")
PLUGIN_STATUS_ROUTE = "/erp-agents/api/status"
_SUMMARIES: dict[tuple[str, str, str], dict[str, Any]] = {}


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` from sync code, also when the caller already runs an event loop (a thread then)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def run_outcomes(runs: Sequence[RunRow], tasks: Sequence[TaskRow]) -> dict[tuple[str, str], str]:
    """completed / partial / failed of each finished run, as workflow_summary decides it: a run that
    succeeded although some agent did not is partial (only non-critical agents may fail then)."""
    not_succeeded = {(t.dag_id, t.run_id) for t in tasks if t.state != "success"}
    return {
        (r.dag_id, r.run_id): (
            "failed"
            if r.state == "failed"
            else "partial"
            if (r.dag_id, r.run_id) in not_succeeded
            else "completed"
        )
        for r in runs
        if r.state in FINISHED_RUN_STATES
    }


def task_link(base_url: str, dag_id: str, run_id: str, task_id: str) -> str:
    """The task instance's page in Airflow 3's UI."""
    return f"{base_url.rstrip('/')}/dags/{dag_id}/runs/{run_id}/tasks/{task_id}"


class StatusClient:
    """Status of the workflows one caller can see; ``base_url`` is the Airflow API server."""

    def __init__(
        self,
        base_url: str,
        credentials: Credentials | None = None,
        *,
        governance: GovernanceReader | None = None,
        window_hours: float | None = None,
        governance_factory: Callable[[], GovernanceReader] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        ui_base_url: str | None = None,
        via_plugin: bool = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials or Credentials()
        self._governance = governance
        self.governance_factory = governance_factory
        self.window_hours = window_hours
        self.ui_base_url = ui_base_url if ui_base_url is not None else self.base_url
        self._transport = transport
        self.via_plugin = via_plugin

    @property
    def governance(self) -> GovernanceReader:
        """The ledger/limiter reader, made on first use (a client that asks the plugin route needs none)."""
        if self._governance is None:
            self._governance = self.governance_factory() if self.governance_factory else NoGovernance()
        return self._governance

    def _hours(self, window_hours: float | None) -> float:
        """The window asked for, else this client's, else ``MonitorConfig.status_window_hours``."""
        if window_hours is not None:
            return window_hours
        if self.window_hours is not None:
            return self.window_hours
        from erp_agents.monitoring.config import monitor_config

        return float(monitor_config().status_window_hours)

    def _api(self) -> AirflowApi:
        return AirflowApi(self.base_url, self.credentials, transport=self._transport)

    # ---- sync facade (CLI, OrchestrationEngine) --------------------------------------------------

    def get_system_status(
        self, window_hours: float | None = None, workflow: str | None = None
    ) -> dict[str, Any]:
        return _run_sync(self.system_status(window_hours, workflow))

    def get_workflow_status(self, dag_id: str, run_id: str | None = None) -> dict[str, Any]:
        return _run_sync(self.workflow_status(dag_id, run_id))

    # ---- async -------------------------------------------------------------------------------------

    async def system_status(
        self, window_hours: float | None = None, workflow: str | None = None
    ) -> dict[str, Any]:
        """Asked of the deployment's own plugin route when it has one (its caches are warm and it sits
        next to the ledger), else computed here from the REST API."""
        hours = window_hours if window_hours is not None else self.window_hours
        if hours is not None:
            status_window(hours)
        if self.via_plugin:  # the deployment's own default window when none is asked for
            params: dict[str, Any] = {
                **({"window_hours": hours} if hours is not None else {}),
                **({"workflow": workflow} if workflow else {}),
            }
            async with self._api() as api:
                try:
                    return dict(await api._call("GET", PLUGIN_STATUS_ROUTE, params=params))
                except NotFound as exc:
                    if workflow is not None and "workflow" in str(exc):
                        raise
        data, _ = await self._collect(hours, workflow)
        return system_status(data)

    async def dashboard(self, window_hours: float | None = None) -> dict[str, Any]:
        """The status plus what the dashboard draws: spend series, agent and failure tables."""
        data, ends = await self._collect(window_hours, None)
        return {
            "status": system_status(data),
            "spend_series": spend_series(data.usage, ends),
            "agents": self._agent_table(data.tasks),
            "failures": [
                {
                    "dag_id": t.dag_id,
                    "run_id": t.run_id,
                    "task_id": t.task_id,
                    "try_number": t.try_number,
                    "end_date": t.end_date.isoformat() if t.end_date else None,
                    "link": task_link(self.ui_base_url, t.dag_id, t.run_id, t.task_id),
                }
                for t in sorted(data.tasks, key=lambda t: t.end_date or data.since, reverse=True)
                if t.state == "failed"
            ][:100],
            "runs": [
                {
                    "dag_id": r.dag_id,
                    "run_id": r.run_id,
                    "state": r.state,
                    "outcome": data.outcomes.get((r.dag_id, r.run_id)),
                    "start_date": r.start_date.isoformat() if r.start_date else None,
                }
                for r in sorted(data.runs, key=lambda r: r.start_date or data.since, reverse=True)
            ][:50],
        }

    def _agent_table(self, tasks: Sequence[TaskRow]) -> list[dict[str, Any]]:
        groups: dict[tuple[str, str], list[TaskRow]] = {}
        for t in tasks:
            groups.setdefault((t.dag_id, t.task_id), []).append(t)
        rows = []
        for (dag_id, task_id), items in sorted(groups.items()):
            durations = [
                t.duration for t in items if t.duration is not None and t.state in ("success", "failed")
            ]
            latest = max(
                items, key=lambda t: (t.start_date is not None, t.start_date or datetime.min, t.run_id)
            )
            rows.append(
                {
                    "dag_id": dag_id,
                    "task_id": task_id,
                    "runs": len(items),
                    "failed": sum(1 for t in items if t.state == "failed"),
                    "avg_duration": round(sum(durations) / len(durations), 3) if durations else None,
                    "max_duration": round(max(durations), 3) if durations else None,
                    "last_state": latest.state,
                    "link": task_link(self.ui_base_url, dag_id, latest.run_id, task_id),
                }
            )
        return rows

    async def _collect(
        self, window_hours: float | None, workflow: str | None
    ) -> tuple[StatusInput, dict[tuple[str, str, str], datetime]]:
        since, until = status_window(self._hours(window_hours))
        async with self._api() as api:
            workflows, healthy = await asyncio.gather(api.workflows(), api.healthy())
            dag_ids = [d for d in workflows if workflow is None or d == workflow]
            if workflow is not None and not dag_ids:
                raise NotFound(f"workflow {workflow!r} not found")
            # the ledger's SQL runs in a thread while the REST calls are in flight
            ledger_read = asyncio.ensure_future(
                asyncio.to_thread(self.governance.agent_usage, dag_ids, since, until)
            )
            runs = await api.runs(dag_ids, since, until)
            governance_read = asyncio.ensure_future(
                asyncio.to_thread(self.governance.governance, dag_ids, since, until, runs)
            )
            all_tasks = await TASKS.tasks(api, dag_ids, since, runs)
            tasks = tuple(t for t in all_tasks if t.task_id != SUMMARY_TASK_ID)
            ledger = await ledger_read
            xcom_usage = await self._from_xcoms(api, runs, tasks) if ledger is None else []
            governance = await governance_read
        outcomes = run_outcomes(runs, tasks)
        usage = ledger if ledger is not None else xcom_usage
        if ledger is not None:
            governance = replace(governance, ledger_cost_usd=round(sum(u.cost_usd for u in ledger), 6))
        ends = {(t.dag_id, t.run_id, t.task_id): t.end_date for t in tasks if t.end_date is not None}
        data = StatusInput(
            since=since,
            until=until,
            workflows=tuple(workflows if workflow is None else dag_ids),
            runs=tuple(runs),
            tasks=tasks,
            usage=tuple(usage),
            outcomes=outcomes,
            governance=governance,
            engine_running=healthy,
        )
        return data, ends

    async def _summaries(
        self, api: AirflowApi, runs: Sequence[RunRow]
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """The workflow_summary of every finished run, from the cache or the REST API."""
        finished = [r for r in runs if r.state in FINISHED_RUN_STATES]
        missing = [r for r in finished if (self.base_url, r.dag_id, r.run_id) not in _SUMMARIES]
        fetched = await api.xcoms([(r.dag_id, r.run_id, SUMMARY_TASK_ID, "return_value") for r in missing])
        for (dag_id, run_id, _, _), value in fetched.items():
            if isinstance(value, dict):
                _SUMMARIES[(self.base_url, dag_id, run_id)] = value
        return {
            (r.dag_id, r.run_id): _SUMMARIES[(self.base_url, r.dag_id, r.run_id)]
            for r in finished
            if (self.base_url, r.dag_id, r.run_id) in _SUMMARIES
        }

    async def _from_xcoms(
        self, api: AirflowApi, runs: Sequence[RunRow], tasks: Sequence[TaskRow]
    ) -> list[AgentUsage]:
        """Usage without a ledger: finished runs' summaries, and the cost records of runs in flight."""
        summaries = await self._summaries(api, runs)
        usage = [
            AgentUsage.from_mapping(dag_id, run_id, task_id, row)
            for (dag_id, run_id), summary in summaries.items()
            for task_id, row in (summary.get("per_agent") or {}).items()
        ]
        pending = [
            t for t in tasks if (t.dag_id, t.run_id) not in summaries and t.state in ("success", "failed")
        ]
        records = await api.xcoms([(t.dag_id, t.run_id, t.task_id, COST_XCOM_KEY) for t in pending])
        usage += [
            AgentUsage.from_mapping(d, r, task, v)
            for (d, r, task, _), v in records.items()
            if isinstance(v, dict)
        ]
        return usage

    async def workflow_status(self, dag_id: str, run_id: str | None = None) -> dict[str, Any]:
        """One run (default: the latest) with every agent's state, tokens, cost, retries, wait and timings."""
        async with self._api() as api:
            if run_id is None:
                runs = await api._call(
                    "GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 1, "order_by": "-run_after"}
                )
                if not runs["dag_runs"]:
                    raise NotFound(f"workflow {dag_id!r} has no runs")
                run_id = str(runs["dag_runs"][0]["dag_run_id"])
            try:
                run = await api.run(dag_id, run_id)
            except NotFound:
                raise NotFound(f"run {run_id!r} of workflow {dag_id!r} not found") from None
            tasks = [
                t
                for t in await api.task_instances([dag_id], run_ids=[run_id])
                if t.task_id != SUMMARY_TASK_ID
            ]
            ledger = await asyncio.to_thread(self.governance.run_usage, dag_id, run_id)
            if ledger is None:
                usage = await self._from_xcoms(api, [run], tasks)
            else:
                usage = ledger
                await self._summaries(api, [run])
            summary = _SUMMARIES.get((self.base_url, dag_id, run_id))
        outcome = run_outcomes([run], tasks).get((dag_id, run_id))
        return workflow_status(run, tasks, usage, summary or ({"status": outcome} if outcome else None))
