"""The scheduler starts through its entry point, which freezes its imports before Airflow's command runs."""

from __future__ import annotations

import gc
import sys
from unittest import mock

from erp_agents.stack import cluster_settings, processes, scheduler
from erp_agents.stack.collector import GC_THRESHOLDS


def test_every_topology_starts_the_scheduler_through_the_entry_point():
    assert processes.component_argv("scheduler", 8080)[1:] == ["-m", "erp_agents.stack.scheduler"]
    assert cluster_settings.command("scheduler") == ("python", "-m", "erp_agents.stack.scheduler")
    assert processes.component_argv("dag-processor", 8080)[1:] == ["-m", "airflow", "dag-processor"]


def test_airflows_scheduler_runs_with_its_imports_frozen_and_the_bursty_thresholds():
    seen: dict[str, object] = {}

    def airflow_main() -> None:  # what Airflow's CLI would find when it starts the scheduler
        seen.update(argv=list(sys.argv), frozen=gc.get_freeze_count(), thresholds=gc.get_threshold(),
                    imported="airflow.jobs.scheduler_job_runner" in sys.modules)

    thresholds, argv = gc.get_threshold(), list(sys.argv)
    try:
        with mock.patch("airflow.__main__.main", airflow_main):
            scheduler.main(["--num-runs", "1"])
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        sys.argv = argv
    assert seen["argv"] == ["airflow", "scheduler", "--num-runs", "1"]
    assert seen["frozen"] > 100_000 and seen["imported"]  # Airflow and the scheduler's modules
    assert seen["thresholds"] == GC_THRESHOLDS
