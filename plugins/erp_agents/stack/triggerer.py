"""``airflow triggerer`` with its execution-API client built when it starts, not on first use.

Airflow's triggerer serves what triggers ask of the API (XCom reads, connections not in the
environment) through an in-process copy of the execution API, which it builds, and starts, on the
first such request, in its main loop: 17 to 30 s on a busy 2-core machine, during which no trigger
event is recorded and no new trigger loaded. The first agent that read its upstream agents' outputs
paid all of it, so the first dependency level after a triggerer start took that much longer than
the next. Building the client and sending it one request as the trigger runner starts moves the
cost into start-up, which ``up`` waits for anyway.

This wraps an Airflow internal (``TriggerRunnerSupervisor.start`` and its ``client``), so it applies
only to the Airflow versions it was written against (``PATCHED_AIRFLOW``); on others the triggerer
starts unchanged and a warning says so. The upstream change it stands in for: build the in-process
execution API eagerly when the triggerer starts (Airflow's ``InProcessExecutionAPI`` is lazy).
tests/unit/stack/test_triggerer_patch.py fails when the internals it relies on change.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

log = logging.getLogger(__name__)

PATCHED_AIRFLOW = ("3.3.",)


def build_client_at_start() -> bool:
    """Wrap the supervisor's start on the Airflow versions this was checked against; True when applied."""
    from airflow import __version__ as airflow_version
    from airflow.jobs.triggerer_job_runner import TriggerRunnerSupervisor

    if not airflow_version.startswith(PATCHED_AIRFLOW):
        log.warning("Airflow %s: the triggerer's execution API is built on first use, as Airflow does it", airflow_version)
        return False

    start = TriggerRunnerSupervisor.start.__func__  # type: ignore[attr-defined]

    def start_with_client(cls: type[TriggerRunnerSupervisor], /, **kwargs: Any) -> TriggerRunnerSupervisor:
        supervisor: TriggerRunnerSupervisor = start(cls, **kwargs)
        try:  # the first request starts the app (lifespan, routes): 12 s of the 28 a first XCom read took
            supervisor.client.get("health/ping")
        except Exception:  # a failed warm-up only leaves the cost where Airflow puts it
            log.warning("could not warm the triggerer's execution API client", exc_info=True)
        return supervisor

    TriggerRunnerSupervisor.start = classmethod(start_with_client)  # type: ignore[assignment,method-assign]
    return True


# How many deserialized DAG versions one trigger runner keeps (a few per workflow being run).
DAG_CACHE_SIZE = 64
# inspect.getsource(TriggerRunner.create_runtime_ti) of the Airflow versions the cache was written
# against: tests/unit/stack/test_triggerer_patch.py fails when Airflow changes that method.
CREATE_RUNTIME_TI_SHA256 = "af65ff8b8d100ff63424f82ad4bf92d4b5e5c8e1f9082486892b8615949aa192"


def reuse_deserialized_dags() -> bool:
    """Deserialize each DAG version once per trigger runner, not once per trigger it starts.

    For every task that starts in the triggerer, Airflow 3.3 ships the whole serialized DAG and
    rebuilds it with ``DagSerialization.from_dict`` on the runner's event loop
    (``TriggerRunner.create_runtime_ti``), only to take one task from it for the template context.
    The cost grows with the DAG's size times its tasks: the 500 agents of one workflow rebuilt a
    500-task DAG 500 times, and the loop, blocked meanwhile, started nothing else. A serialized DAG
    version never changes (a changed DAG is a new ``dag_version_id``), so the rebuilt DAG is kept per
    version, least recently used first out. The task object is only read there (templates are
    rendered on the trigger, not the task). The upstream change it stands in for: cache
    deserialized DAGs by version in the triggerer, as the scheduler's DagBag does. True when applied.
    """
    from collections import OrderedDict

    from airflow import __version__ as airflow_version
    from airflow.jobs.triggerer_job_runner import TriggerRunner
    from airflow.serialization.serialized_objects import DagSerialization

    if not airflow_version.startswith(PATCHED_AIRFLOW):
        log.warning("Airflow %s: the triggerer deserializes the DAG for every trigger, as Airflow does it", airflow_version)
        return False

    dags: OrderedDict[Any, Any] = OrderedDict()

    def deserialized(encoded_dag: dict[str, Any], version: Any) -> Any:
        if version in dags:
            dags.move_to_end(version)
            return dags[version]
        dag = dags[version] = DagSerialization.from_dict(encoded_dag)
        if len(dags) > DAG_CACHE_SIZE:
            dags.popitem(last=False)
        return dag

    def create_runtime_ti(cls: type[TriggerRunner], task_instance: Any, encoded_dag: dict[str, Any],
                          dag_run_data: dict[str, Any]) -> Any:
        # Airflow 3.3's body (CREATE_RUNTIME_TI_SHA256 pins it), with the DAG taken from the cache.
        from airflow.api_fastapi.execution_api.datamodels.taskinstance import DagRun as DRDataModel
        from airflow.sdk.api.datamodels._generated import TIRunContext
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        task = deserialized(encoded_dag, task_instance.dag_version_id).get_task(task_instance.task_id)
        return RuntimeTaskInstance.model_construct(
            **task_instance.model_dump(exclude_unset=True),
            task=task,
            _ti_context_from_server=TIRunContext.model_construct(
                dag_run=DRDataModel(**dag_run_data),
                max_tries=task.retries,
            ),
        )

    TriggerRunner.create_runtime_ti = classmethod(create_runtime_ti)  # type: ignore[assignment,method-assign]
    return True


def main(argv: list[str] | None = None) -> None:
    build_client_at_start()
    reuse_deserialized_dags()
    from airflow.__main__ import main as airflow_main

    sys.argv = ["airflow", "triggerer", *(sys.argv[1:] if argv is None else argv)]
    airflow_main()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    main()
