"""The scheduler starts through its entry point, which freezes its imports and defers agents in bulk before
Airflow's command runs; and the Airflow sources the bulk deferral stands in for."""

from __future__ import annotations

import gc
import sys
from unittest import mock

from erp_agents.stack import cluster_settings, processes, scheduler, scheduler_defer
from erp_agents.stack.collector import GC_THRESHOLDS


def test_every_topology_starts_the_scheduler_through_the_entry_point():
    assert processes.component_argv("scheduler", 8080)[1:] == ["-m", "erp_agents.stack.scheduler"]
    assert cluster_settings.command("scheduler") == ("python", "-m", "erp_agents.stack.scheduler")
    assert processes.component_argv("dag-processor", 8080)[1:] == ["-m", "airflow", "dag-processor"]


def test_airflows_scheduler_runs_with_its_imports_frozen_and_the_bursty_thresholds():
    seen: dict[str, object] = {}

    from airflow.models.taskinstance import TaskInstance

    def airflow_main() -> None:  # what Airflow's CLI would find when it starts the scheduler
        seen.update(argv=list(sys.argv), frozen=gc.get_freeze_count(), thresholds=gc.get_threshold(),
                    imported="airflow.jobs.scheduler_job_runner" in sys.modules,
                    defers_in_bulk=TaskInstance.defer_task.__wrapped__ is scheduler_defer.defer_task_in_bulk)

    thresholds, argv = gc.get_threshold(), list(sys.argv)
    try:
        with mock.patch("airflow.__main__.main", airflow_main), \
                mock.patch.object(TaskInstance, "defer_task", TaskInstance.defer_task):
            scheduler.main(["--num-runs", "1"])
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        sys.argv = argv
    assert seen["argv"] == ["airflow", "scheduler", "--num-runs", "1"]
    assert seen["frozen"] > 100_000 and seen["imported"]  # Airflow and the scheduler's modules
    assert seen["thresholds"] == GC_THRESHOLDS
    assert seen["defers_in_bulk"]


def test_the_bulk_deferral_stands_in_for_the_airflow_methods_it_was_written_against():
    import hashlib
    import inspect

    from airflow import __version__ as airflow_version
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance

    assert airflow_version.startswith(scheduler_defer.PATCHED_AIRFLOW)
    sources = {"TaskInstance.defer_task": TaskInstance.defer_task, "DagRun.schedule_tis": DagRun.schedule_tis}
    found = {name: hashlib.sha256(inspect.getsource(f).encode()).hexdigest() for name, f in sources.items()}
    changed = sorted(name for name, digest in found.items() if scheduler_defer.PINNED_DEFER_SOURCES[name] != digest)
    assert not changed, (f"Airflow changed {changed}: port the change into erp_agents.stack.scheduler_defer (nothing "
                         "may read trigger_id before the next flush), then update PINNED_DEFER_SOURCES")
