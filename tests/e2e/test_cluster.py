"""The local Celery cluster end to end: ``up`` (health-checked, then idempotent), erp_nightly and the
three parallel_workflows at once through ``OrchestrationEngine(url=...)``, their agents spread over
both triggerers, ``down`` by pid.

Which triggerer ran an agent: while deferred, a task's trigger row names its triggerer, but the row
is gone once the task resumes. What stays is the trigger's log, which Airflow writes per triggerer
job: ``.../attempt=N.log.trigger.<TriggererJob id>.log`` (TriggerRunnerSupervisor), so the job ids
in those names, checked against the job table, say which triggerers ran the run's agents.
"""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from erp_agents import WorkflowStatus
from erp_agents.engine import OrchestrationEngine
from erp_agents.factory.plan import SUMMARY_TASK_ID
from erp_agents.spec.discovery import load_spec_file
from erp_agents.stack.cluster import POSTGRES, REDIS, Cluster
from erp_agents.stack.cluster_settings import COMPONENTS, METADATA_DB, engine_config
from tests.conftest import ROOT
from tests.services import require

SPEC = ROOT / "dags" / "specs" / "erp_nightly.yaml"
PARALLEL = sorted((ROOT / "dags" / "specs" / "parallel_workflows").glob("*.yaml"))
METADATA_URL = f"postgresql+psycopg2://postgres@{POSTGRES}/{METADATA_DB}"


def _address(text_: str) -> tuple[str, int]:
    host, port = text_.split(":")
    return host, int(port)


def live_jobs(job_type: str) -> int:
    engine = create_engine(METADATA_URL, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            if not conn.execute(text("SELECT to_regclass('job')")).scalar():
                return 0
            return int(conn.execute(text(
                "SELECT count(*) FROM job WHERE job_type = :t AND end_date IS NULL "
                "AND latest_heartbeat > now() - interval '30 seconds'"), {"t": job_type}).scalar() or 0)
    except Exception as exc:  # noqa: BLE001 (no database yet: nothing else uses it)
        if "does not exist" in str(exc):
            return 0
        raise
    finally:
        engine.dispose()


def triggerer_jobs(job_ids: set[int]) -> dict[int, str]:
    engine = create_engine(METADATA_URL, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, job_type FROM job WHERE id = ANY(:ids)"), {"ids": list(job_ids)}).all()
    finally:
        engine.dispose()
    return {int(row[0]): str(row[1]) for row in rows}


def triggerers_of_run(logs: Path, dag_id: str, run_id: str) -> dict[int, set[str]]:
    """TriggererJob id -> the tasks (agents, the summary) whose triggers it ran in this run."""
    ran: dict[int, set[str]] = {}
    for path in (logs / "airflow" / f"dag_id={dag_id}" / f"run_id={run_id}").glob("task_id=*/attempt=*.log.trigger.*.log"):
        job_id = int(path.name.rsplit(".trigger.", 1)[1].removesuffix(".log"))
        ran.setdefault(job_id, set()).add(path.parent.name.removeprefix("task_id="))
    return ran


@pytest.mark.postgres
def test_erp_nightly_runs_on_the_cluster_across_both_triggerers(tmp_path: Path) -> None:
    require("PostgreSQL", _address(POSTGRES))
    require("Redis", _address(REDIS))
    assert live_jobs("SchedulerJob") == 0, (
        f"another cluster is using {METADATA_DB} (python -m erp_agents.stack.cluster down, then run again)")
    cluster = Cluster(home=tmp_path / "cluster", api_port=0, simulator_latency=0.2)
    began = time.monotonic()
    try:
        state, attached = cluster.up()
        up_s = time.monotonic() - began
        assert not attached
        assert all(cluster.status().values())
        assert cluster.up() == (state, True)  # idempotent: attaches, starts nothing

        user, password = cluster.login()
        workflow = load_spec_file(SPEC)
        with OrchestrationEngine(engine_config(f"redis://{REDIS}/3"), url=state.api_url, username=user,
                                 password=password, run_timeout=150) as engine:
            assert engine.mode == "remote"
            others = [engine.register_workflow(load_spec_file(path), source=str(path)) for path in PARALLEL]
            dag_id = engine.register_workflow(workflow, source=str(SPEC))
            runs = {}
            for other in others:  # side by side with erp_nightly
                engine.api.unpause(other)
                runs[other] = engine.api.trigger(other)
            result = engine.execute_workflow(dag_id)
            assert {other: engine.api.wait(other, run_id, 120) for other, run_id in runs.items()} == dict.fromkeys(others, "success")
            results = [result, *(engine.read_result(other, run_id) for other, run_id in runs.items())]
        for each in results:
            assert each.status == WorkflowStatus.COMPLETED, (each.workflow_id, each.reason)
            assert all(r.state == "success" for r in each.agent_results.values())
        assert len(result.agent_results) == len(workflow.agents)

        ran: dict[int, set[str]] = {}
        for each in results:
            of_run = triggerers_of_run(cluster.layout.logs, each.workflow_id, each.run_id)
            assert set().union(*of_run.values()) == {r.task_id for r in each.agent_results.values()} | {SUMMARY_TASK_ID}, (
                f"every agent of {each.workflow_id}, and its summary, ran in a triggerer")
            for job, tasks in of_run.items():
                ran.setdefault(job, set()).update(f"{each.workflow_id}.{task}" for task in tasks)
        assert set(triggerer_jobs(set(ran)).values()) == {"TriggererJob"}
        assert len(ran) == 2, f"agents ran on {len(ran)} triggerer(s): {ran}"
        pids = {name: info.pid for name, info in cluster.status().items() if info}
        print(f"\ncluster up {up_s:.1f} s; agents per TriggererJob: "
              f"{ {job: len(tasks) for job, tasks in ran.items()} }")
    finally:
        began_down = time.monotonic()
        stopped = cluster.down()
        print(f"cluster down {time.monotonic() - began_down:.1f} s")
    assert set(stopped) == set(COMPONENTS)
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids.values())
    assert not any(cluster.status().values())
