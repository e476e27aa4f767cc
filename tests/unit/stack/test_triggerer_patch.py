"""The triggerer warm-up wraps Airflow internals: this fails when those internals change."""

from __future__ import annotations

import inspect

from airflow import __version__ as airflow_version
from airflow.jobs.triggerer_job_runner import TriggerRunnerSupervisor

from erp_agents.stack import triggerer


def test_the_internals_the_warm_up_relies_on_are_still_there():
    assert airflow_version.startswith(triggerer.PATCHED_AIRFLOW), (
        f"Airflow {airflow_version}: check TriggerRunnerSupervisor.start and its client, then add the version")
    assert isinstance(inspect.getattr_static(TriggerRunnerSupervisor, "start"), classmethod)
    # The supervisor talks to the execution API through ``client`` (a lazily built in-process app).
    assert "client" in {name for name, _ in inspect.getmembers(TriggerRunnerSupervisor)} or \
        "client" in inspect.getsource(TriggerRunnerSupervisor)


def test_the_wrapper_is_applied_once_and_keeps_a_classmethod():
    original = inspect.getattr_static(TriggerRunnerSupervisor, "start")
    try:
        assert triggerer.build_client_at_start() is True
        wrapped = inspect.getattr_static(TriggerRunnerSupervisor, "start")
        assert isinstance(wrapped, classmethod) and wrapped is not original
    finally:
        TriggerRunnerSupervisor.start = original
