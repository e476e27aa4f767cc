"""Agent task instances of each workflow, kept per process and refreshed by what changed since the last read.

Listing 10,000 task instances through the REST API costs seconds on the API server (they are
serialized one by one), and a dashboard polls every few seconds. So the first read of a workflow's
window lists them in full (one batch request), and later reads ask only for task instances updated
since the previous read (``updated_at_gte``, by the server's own clock from its Date header). Rows are
filtered to the runs the caller's fresh run listing returns, so deleted runs drop out and Airflow's
permissions still decide what a caller sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from erp_agents.monitoring.airflow_api import AirflowApi
from erp_agents.monitoring.status import RunRow, TaskRow

MARGIN = timedelta(seconds=2)  # the server's Date header has whole seconds
TaskKey = tuple[str, str, int]  # run_id, task_id, map_index


@dataclass
class _Workflow:
    since: datetime
    synced: datetime
    rows: dict[TaskKey, TaskRow] = field(default_factory=dict)


class TaskCache:
    """Per-deployment (base URL) cache of task instance rows by DAG id."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], _Workflow] = {}

    def clear(self) -> None:
        self._entries.clear()

    async def tasks(
        self, api: AirflowApi, dag_ids: Sequence[str], since: datetime, runs: Sequence[RunRow]
    ) -> list[TaskRow]:
        """Task instances of ``runs`` (all of ``dag_ids``, due since ``since``)."""
        started = api.server_time or datetime.now(timezone.utc)
        full = [
            d
            for d in dag_ids
            if (api.base_url, d) not in self._entries or self._entries[(api.base_url, d)].since > since
        ]
        known = [d for d in dag_ids if d not in full]
        if full:
            rows = await api.task_instances(full, since=since)
            fresh = {d: _Workflow(since=since, synced=started - MARGIN) for d in full}
            for row in rows:
                fresh[row.dag_id].rows[(row.run_id, row.task_id, row.map_index)] = row
            for d, entry in fresh.items():
                self._entries[(api.base_url, d)] = entry
        if known:
            mark = min(self._entries[(api.base_url, d)].synced for d in known)
            changed = await api.task_instances_updated_since(mark)
            if changed is None:  # a burst of changes: list those workflows in full again
                for d in known:
                    del self._entries[(api.base_url, d)]
                return await self.tasks(api, dag_ids, since, runs)
            wanted = set(known)
            for row in changed:
                if row.dag_id in wanted:
                    self._entries[(api.base_url, row.dag_id)].rows[
                        (row.run_id, row.task_id, row.map_index)
                    ] = row
            for d in known:
                self._entries[(api.base_url, d)].synced = started - MARGIN
        live = {(r.dag_id, r.run_id) for r in runs}
        out: list[TaskRow] = []
        for d in dag_ids:
            entry = self._entries[(api.base_url, d)]
            if entry.since >= since:  # the whole window is known: forget rows of runs that are gone
                entry.rows = {k: v for k, v in entry.rows.items() if (d, k[0]) in live}
            out += [row for row in entry.rows.values() if (row.dag_id, row.run_id) in live]
        return out


TASKS = TaskCache()
