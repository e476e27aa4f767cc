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


def test_the_dag_cache_stands_in_for_the_create_runtime_ti_it_was_written_against():
    import hashlib

    from airflow.jobs.triggerer_job_runner import TriggerRunner

    source = inspect.getsource(inspect.getattr_static(TriggerRunner, "create_runtime_ti").__func__)
    assert hashlib.sha256(source.encode()).hexdigest() == triggerer.CREATE_RUNTIME_TI_SHA256, (
        "Airflow changed TriggerRunner.create_runtime_ti: port the change into "
        "erp_agents.stack.triggerer.reuse_deserialized_dags (or drop it if Airflow caches DAGs now), then update the digest")


def test_the_dag_cache_deserializes_each_dag_version_once_and_builds_the_same_runtime_ti():
    import uuid
    from datetime import datetime, timezone
    from unittest import mock

    from airflow.jobs.triggerer_job_runner import TriggerRunner
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG
    from airflow.serialization.serialized_objects import DagSerialization

    with DAG("cached", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc)) as dag:
        EmptyOperator(task_id="a", retries=2) >> EmptyOperator(task_id="b")
    encoded = DagSerialization.to_dict(dag)
    now = datetime(2026, 12, 1, tzinfo=timezone.utc)
    run = {"dag_id": "cached", "run_id": "r", "logical_date": now, "data_interval_start": now, "data_interval_end": now,
           "run_after": now, "start_date": now, "end_date": None, "run_type": "manual", "state": "running",
           "conf": {}, "consumed_asset_events": [], "partition_key": None}
    version = uuid.uuid4()

    def ti(task_id: str) -> mock.Mock:
        fake = mock.Mock(task_id=task_id, dag_version_id=version)
        fake.model_dump.return_value = {"task_id": task_id, "dag_id": "cached", "run_id": "r", "try_number": 1,
                                        "map_index": -1, "dag_version_id": version, "id": uuid.uuid4()}
        return fake

    original = inspect.getattr_static(TriggerRunner, "create_runtime_ti")
    try:
        expected = TriggerRunner.create_runtime_ti(ti("a"), encoded, run)
        assert triggerer.reuse_deserialized_dags() is True
        with mock.patch.object(DagSerialization, "from_dict", wraps=DagSerialization.from_dict) as from_dict:
            first = TriggerRunner.create_runtime_ti(ti("a"), encoded, run)
            second = TriggerRunner.create_runtime_ti(ti("b"), encoded, run)
        assert from_dict.call_count == 1  # the second task of the same DAG version reuses the DAG
        assert first.task.task_id == expected.task.task_id == "a" and second.task.task_id == "b"
        assert first._ti_context_from_server.max_tries == expected._ti_context_from_server.max_tries == 2
        assert first.task.dag is second.task.dag
    finally:
        TriggerRunner.create_runtime_ti = original
