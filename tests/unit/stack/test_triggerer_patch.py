"""The triggerer warm-up wraps Airflow internals: this fails when those internals change."""

from __future__ import annotations

import inspect

import pytest

from airflow import __version__ as airflow_version
from airflow.jobs.triggerer_job_runner import TriggerRunnerSupervisor

from erp_agents.stack import triggerer
from erp_agents.stack.collector import GC_THRESHOLDS


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


def test_the_execution_api_is_built_before_the_job_and_the_supervisor_uses_it(monkeypatch):
    import hashlib

    from airflow.jobs import triggerer_job_runner

    found = {
        "in_process_api_server": triggerer_job_runner.in_process_api_server,
        "TriggerRunnerSupervisor.make_client": TriggerRunnerSupervisor.make_client,
    }
    changed = sorted(name for name, f in found.items()
                     if triggerer.PINNED_WARM_UP_SOURCES.get(name)
                     != hashlib.sha256(inspect.getsource(f).encode()).hexdigest())
    assert not changed, f"Airflow changed {changed}: check build_execution_api_now, then update PINNED_WARM_UP_SOURCES"

    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "a-test-secret-of-some-length")
    monkeypatch.setattr(triggerer_job_runner, "in_process_api_server", triggerer_job_runner.in_process_api_server)
    assert triggerer.build_execution_api_now() is True
    api = triggerer_job_runner.in_process_api_server()
    assert api is triggerer_job_runner.in_process_api_server(), "one app for the supervisor, built once"
    assert api.app._cadwyn_initialized, "the versioned routes were generated before the job starts"
    # The supervisor's own client, as make_client builds it, reaches the same app over its transport.
    client = TriggerRunnerSupervisor.make_client(None)  # type: ignore[arg-type]
    assert client.get("health/ping").status_code == 200


def _sources() -> dict[str, object]:
    from airflow.jobs.triggerer_job_runner import TriggerRunner
    from airflow.models.dagbag import DBDagBag

    return {
        "TriggerRunner.create_runtime_ti": inspect.getattr_static(TriggerRunner, "create_runtime_ti").__func__,
        "TriggerRunner.create_triggers": TriggerRunner.create_triggers,
        "TriggerRunnerSupervisor.build_trigger_workloads": TriggerRunnerSupervisor.build_trigger_workloads,
        "TriggerRunnerSupervisor._create_workload": TriggerRunnerSupervisor._create_workload,
        "DBDagBag.get_serialized_dag_model_for_run": DBDagBag.get_serialized_dag_model_for_run,
        "DBDagBag._version_from_dag_run": inspect.getattr_static(DBDagBag, "_version_from_dag_run").__func__,
    }


def test_the_dag_reuse_stands_in_for_the_airflow_methods_it_was_written_against():
    import hashlib

    found = {name: hashlib.sha256(inspect.getsource(f).encode()).hexdigest() for name, f in _sources().items()}
    changed = sorted(name for name, digest in found.items() if triggerer.PINNED_SOURCES.get(name) != digest)
    assert not changed, (f"Airflow changed {changed}: port the change into erp_agents.stack.triggerer "
                         "(or drop the reuse if Airflow does it now), then update PINNED_SOURCES")


def _restore(*pairs):
    for owner, name, value in pairs:
        setattr(owner, name, value)


def test_a_batch_carries_each_dag_version_once_and_the_runner_builds_every_task_from_it():
    import uuid
    from datetime import datetime, timezone
    from unittest import mock

    from airflow.executors.workloads import RunTrigger
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
    version, other = uuid.uuid4(), uuid.uuid4()

    def ti(task_id: str, dag_version: uuid.UUID = version) -> mock.Mock:
        fake = mock.Mock(task_id=task_id, dag_version_id=dag_version)
        fake.model_dump.return_value = {"task_id": task_id, "dag_id": "cached", "run_id": "r", "try_number": 1,
                                        "map_index": -1, "dag_version_id": dag_version, "id": uuid.uuid4()}
        return fake

    def workload(n: int, task_id: str, dag_version: uuid.UUID = version) -> mock.Mock:
        return mock.Mock(spec=RunTrigger, id=n, ti=ti(task_id, dag_version), dag_data=encoded,
                         model_copy=lambda update, n=n, task_id=task_id, v=dag_version: mock.Mock(
                             id=n, ti=ti(task_id, v), dag_data=update["dag_data"]))

    saved = [(TriggerRunner, "create_runtime_ti", inspect.getattr_static(TriggerRunner, "create_runtime_ti")),
             (TriggerRunnerSupervisor, "build_trigger_workloads", TriggerRunnerSupervisor.build_trigger_workloads),
             (TriggerRunnerSupervisor, "_create_workload", TriggerRunnerSupervisor._create_workload)]
    expected = TriggerRunner.create_runtime_ti(ti("a"), encoded, run)
    batch = [workload(1, "a"), workload(2, "b"), workload(3, "a", other)]
    try:
        with mock.patch.object(TriggerRunnerSupervisor, "build_trigger_workloads", return_value=batch):
            assert triggerer.reuse_deserialized_dags() is True
            sent = TriggerRunnerSupervisor.build_trigger_workloads(mock.Mock(), {1, 2, 3})
        # The second task of the same version names it; another version carries its own DAG.
        assert [w.dag_data for w in sent] == [encoded, {triggerer.DAG_REF_KEY: str(version)}, encoded]
        # A batch that names as many versions as the runner keeps sends whole DAGs from then on: a
        # reference could otherwise name a version the runner has already let go.
        repeat = [workload(1, "a"), workload(2, "a", other), workload(3, "b")]
        with mock.patch.object(triggerer, "DAG_CACHE_SIZE", 2), \
                mock.patch.object(TriggerRunnerSupervisor, "build_trigger_workloads", return_value=repeat):
            triggerer._supervisor_reuses_dags()
            assert [w.dag_data for w in TriggerRunnerSupervisor.build_trigger_workloads(mock.Mock(), {1, 2, 3})] == [
                encoded, encoded, encoded]
        with mock.patch.object(DagSerialization, "from_dict", wraps=DagSerialization.from_dict) as from_dict:
            first = TriggerRunner.create_runtime_ti(sent[0].ti, sent[0].dag_data, run)
            second = TriggerRunner.create_runtime_ti(sent[1].ti, sent[1].dag_data, run)
        assert from_dict.call_count == 1
        assert (first.task.task_id, second.task.task_id) == ("a", "b") and first.task.dag is second.task.dag
        assert first._ti_context_from_server.max_tries == expected._ti_context_from_server.max_tries == 2
        with pytest.raises(TypeError, match="no longer cached"):  # Airflow fails such a trigger, never hangs
            TriggerRunner.create_runtime_ti(ti("a", uuid.uuid4()), {triggerer.DAG_REF_KEY: "gone"}, run)
        # The supervisor loads and deserializes a DAG version once, however many of its tasks it checks.
        bag = mock.Mock(spec=["get_serialized_dag_model"])
        bag.get_serialized_dag_model.return_value = mock.Mock(data=encoded, dag_version_id=version)
        seen = []
        with mock.patch.object(TriggerRunnerSupervisor, "_create_workload", triggerer._supervisor_create_workload(
                lambda self, trigger, dag_bag, render_log_fname, session: seen.append(
                    dag_bag.get_serialized_dag_model(version_id=version, session=None).dag))):
            for _ in range(3):
                TriggerRunnerSupervisor._create_workload(mock.Mock(), trigger=None, dag_bag=bag, render_log_fname=None,
                                                         session=None)
        assert bag.get_serialized_dag_model.call_count == 1
        assert seen[0] is seen[1] is seen[2] and seen[0].get_task("b").task_id == "b"
    finally:
        _restore(*saved)


def test_a_batch_asks_for_a_dags_latest_version_once_and_a_run_with_its_own_version_never():
    from types import SimpleNamespace
    from unittest import mock

    from airflow.models.dagbag import DBDagBag
    from airflow.models.dag_version import DagVersion

    latest = SimpleNamespace(id="v-latest")
    unversioned = [SimpleNamespace(dag_id="wf", bundle_version=None, created_dag_version_id="v-old") for _ in range(3)]
    pinned = SimpleNamespace(dag_id="wf", bundle_version="abc123", created_dag_version_id="v-pinned")
    other = SimpleNamespace(dag_id="other", bundle_version=None, created_dag_version_id="v-o")

    def resolve(bag: DBDagBag, runs: list) -> list:
        cached = triggerer._DagBagByVersion(bag, triggerer._VersionCache())
        return [cached._version_of_run(run, session=None) for run in runs]

    with mock.patch.object(DagVersion, "get_latest_version", return_value=latest) as lookups:
        # Airflow's own resolution, run by run: what the batch must answer.
        expected = [DBDagBag._version_from_dag_run(run, session=None) for run in [*unversioned, pinned, other]]
        asked_by_airflow = lookups.call_count
        lookups.reset_mock()
        first_batch = resolve(DBDagBag(), [*unversioned, pinned, other])
        assert first_batch == expected == ["v-latest"] * 3 + ["v-pinned", "v-latest"]
        assert asked_by_airflow == 4 and lookups.call_count == 2  # once per DAG, never for the pinned run
        resolve(DBDagBag(), unversioned)  # a new batch asks again: a new version may have been parsed since
        assert lookups.call_count == 3
    with mock.patch.object(DagVersion, "get_latest_version", return_value=None):  # no version left: the run's own
        assert resolve(DBDagBag(), [*unversioned, other]) == ["v-old"] * 3 + ["v-o"]


def test_success_callback_requests_stand_in_for_the_airflow_methods_they_were_written_against():
    import hashlib

    from airflow.dag_processing import processor
    from airflow.models.trigger import handle_event_submit
    from airflow.triggers.base import BaseTaskEndEvent

    sources = {"handle_event_submit[BaseTaskEndEvent]": handle_event_submit.registry[BaseTaskEndEvent],
               "dag_processing.processor._execute_task_callbacks": processor._execute_task_callbacks}
    found = {name: hashlib.sha256(inspect.getsource(f).encode()).hexdigest() for name, f in sources.items()}
    changed = sorted(n for n, digest in found.items() if triggerer.PINNED_CALLBACK_SOURCES[n] != digest)
    assert not changed, (f"Airflow changed {changed}: check whether a success callback request is still sent for "
                         "every triggerer-ended task and still never run, then update PINNED_CALLBACK_SOURCES")


def test_only_callback_requests_that_nothing_runs_are_dropped():
    from airflow.callbacks.callback_requests import TaskCallbackRequest
    from airflow.callbacks.database_callback_sink import DatabaseCallbackSink
    from airflow.utils.state import TaskInstanceState

    original = DatabaseCallbackSink.send
    sent = []
    DatabaseCallbackSink.send = lambda self, callback, *a, **k: sent.append(callback.task_callback_type)
    try:
        assert triggerer.skip_success_callback_requests() is True
        for state in (TaskInstanceState.SUCCESS, TaskInstanceState.FAILED, TaskInstanceState.UP_FOR_RETRY):
            request = TaskCallbackRequest.model_construct(task_callback_type=state)
            DatabaseCallbackSink().send(request, session=None)
    finally:
        DatabaseCallbackSink.send = original
    assert sent == [TaskInstanceState.FAILED, TaskInstanceState.UP_FOR_RETRY]


def test_a_permanent_agent_failure_ends_without_a_retry_and_others_keep_airflows_choice():
    from airflow.models.trigger import handle_event_submit
    from airflow.triggers.base import BaseTaskEndEvent, TaskFailedEvent

    from erp_agents.costs.record import COST_XCOM_KEY

    class FakeTaskInstance:
        def is_eligible_to_retry(self) -> bool:
            return True

    original = handle_event_submit.registry[BaseTaskEndEvent]
    asked: list[bool] = []
    handle_event_submit.register(BaseTaskEndEvent, lambda event, *, task_instance, session: asked.append(
        task_instance.is_eligible_to_retry()))
    ti = FakeTaskInstance()
    try:
        assert triggerer.end_permanent_failures_here() is True
        for xcoms in ({COST_XCOM_KEY: {"error_type": "BudgetExceededError"}},
                      {COST_XCOM_KEY: {"error_type": "TransientAgentError"}}, None):
            handle_event_submit(TaskFailedEvent(xcoms=xcoms), task_instance=ti, session=None)
    finally:
        handle_event_submit.register(BaseTaskEndEvent, original)
        handle_event_submit.register(TaskFailedEvent, original)
        triggerer.ENDS_PERMANENT_FAILURES = False
    assert asked == [False, True, True]  # a budget refusal is final; the rest is Airflow's retry rule
    assert ti.is_eligible_to_retry() is True  # the task instance is left as it was


def test_objects_alive_before_the_fork_are_frozen_in_the_forked_runner():
    """The runner is forked from the supervisor: what was frozen there is never walked by its collector."""
    import gc
    import os

    class Imported:  # stands for a module-level object of an import
        pass

    kept = [Imported() for _ in range(1000)]
    thresholds = gc.get_threshold()
    try:
        frozen = triggerer.prepare_the_collector_for_bursts()
        assert frozen >= len(kept)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the trigger runner's side of Airflow's fork
            gc.collect()
            walked = sum(1 for obj in gc.get_objects() if isinstance(obj, Imported))
            os.write(write, f"{walked} {gc.get_threshold()[0]}".encode())
            os._exit(0)
        os.close(write)
        walked_in_child, threshold_in_child = map(int, os.read(read, 64).decode().split())
        os.waitpid(pid, 0)
        assert walked_in_child == 0, "the forked process's collector still walks what was frozen before the fork"
        assert threshold_in_child == GC_THRESHOLDS[0]
        assert not any(isinstance(obj, Imported) for obj in gc.get_objects()), "frozen objects are still tracked"
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    assert any(isinstance(obj, Imported) for obj in gc.get_objects())


def test_the_warm_up_loads_what_the_first_agents_would_load_on_the_runner_loop():
    """In a fresh interpreter (this one has imported much already): after warm_imports, building a
    model and pricing a request import nothing more."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from erp_agents.stack.triggerer import warm_imports\n"
        "warm_imports()\n"
        "before = set(sys.modules)\n"
        "import openai, anthropic\n"
        "_ = openai.AsyncOpenAI(api_key='k', base_url='http://x.invalid/').chat.completions\n"
        "_ = anthropic.AsyncAnthropic(api_key='k', base_url='http://x.invalid/').beta.messages\n"
        "from erp_agents.costs.pricing import TokenCounts, quote\n"
        "quote('claude-3-5-haiku-latest', TokenCounts(10, 10), provider_type='anthropic')\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
