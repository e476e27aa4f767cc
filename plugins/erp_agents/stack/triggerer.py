"""``airflow triggerer`` with its execution API built before the triggerer job starts, not on first use.

Airflow's triggerer serves what triggers ask of the API (XCom reads, connections not in the
environment) through an in-process copy of the execution API, which it builds, and starts, on the
first such request, in its main loop: 17 to 30 s on a busy 2-core machine, during which no trigger
event is recorded and no new trigger loaded. The first agent that read its upstream agents' outputs
paid all of it, so the first dependency level after a triggerer start took that much longer than
the next.

Here the app is built, and its versioned routes generated (Cadwyn does that on the first request:
3 of the 8 s of CPU the whole build takes), before Airflow's CLI registers the triggerer job. The
job's first heartbeat, which ``up`` and the cluster's health check wait for, therefore comes after
the cost, not in the middle of the first burst of agents: py-spy on a fresh deployment's first
500-agent run found both triggerers spending 6-7 s each in that build while the agents waited. The
supervisor then uses that same app (``in_process_api_server``), and one request at its start opens
the transport.

This wraps Airflow internals (``in_process_api_server``, ``TriggerRunnerSupervisor.start`` and its
``client``), so it applies only to the Airflow versions it was written against (``PATCHED_AIRFLOW``);
on others the triggerer starts unchanged and a warning says so. The upstream change it stands in
for: build the in-process execution API eagerly when the triggerer starts (Airflow's
``InProcessExecutionAPI`` is lazy). tests/unit/stack/test_triggerer_patch.py fails when the
internals it relies on change.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections import OrderedDict
from functools import cached_property
from typing import Any
from weakref import WeakKeyDictionary

from erp_agents.stack.collector import freeze_what_is_loaded

log = logging.getLogger(__name__)

PATCHED_AIRFLOW = ("3.3.",)
# The base URL Airflow's supervisor gives its in-process client (``make_client``).
IN_PROCESS_URL = "http://in-process.invalid./"
# Where the SDK clients built to load their modules point; they never send a request.
WARM_UP_URL = "http://warm-up.invalid./"
# inspect.getsource() of what ``build_execution_api_now`` replaces or relies on, as written for PATCHED_AIRFLOW.
PINNED_WARM_UP_SOURCES = {
    "in_process_api_server": "40bd80393ce624db4719d810ac64589005a126ecda3f4e31b377624ba54bac09",
    "TriggerRunnerSupervisor.make_client": "c9c0f1268db4bb732067c5827991bb1a7135a375918a29be5a45b1cab29fa75e",
}


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


def build_execution_api_now() -> bool:
    """Build the supervisor's in-process execution API and serve it one request, in this process and
    before the triggerer job exists; True when the supervisor will use it (see the module's docstring).

    The request runs inside the app's lifespan, on a loop that is closed again: no thread is left
    running when Airflow forks the trigger runner."""
    from airflow import __version__ as airflow_version

    if not airflow_version.startswith(PATCHED_AIRFLOW):
        return False
    import asyncio

    import httpx
    from airflow.api_fastapi.execution_api.app import InProcessExecutionAPI
    from airflow.jobs import triggerer_job_runner

    api = InProcessExecutionAPI()
    app = api.app

    async def first_request() -> int:
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=IN_PROCESS_URL) as client:
                return (await client.get("health/ping")).status_code

    try:
        status = asyncio.run(first_request())
    except Exception:  # a failed warm-up only leaves the cost where Airflow puts it
        log.warning("could not build the triggerer's execution API before it starts", exc_info=True)
        return False
    if status != 200:
        log.warning("the triggerer's execution API answered %s to its first request", status)
        return False
    triggerer_job_runner.in_process_api_server = lambda: api  # type: ignore[assignment]
    return True


# How many deserialized DAG versions each side keeps. A batch that names more versions than this
# sends the DAG with every workload after that point (``send_each_dag_once_per_batch``).
DAG_CACHE_SIZE = 128
# The dag_data of a workload whose DAG version went earlier in the same batch.
DAG_REF_KEY = "__erp_agents_dag_version__"
# inspect.getsource() of the Airflow methods the DAG reuse stands in for or relies on, as written for
# PATCHED_AIRFLOW; tests/unit/stack/test_triggerer_patch.py fails when Airflow changes one of them.
PINNED_SOURCES = {
    "TriggerRunner.create_runtime_ti": "af65ff8b8d100ff63424f82ad4bf92d4b5e5c8e1f9082486892b8615949aa192",
    "TriggerRunner.create_triggers": "194887f519ad95512238a43762170b55da75c073b2b41debb897088fe0c4d387",
    "TriggerRunnerSupervisor.build_trigger_workloads": "c0d3e87ef28ca1936e7019c313f493728fe74347999f410678c34ae4f5eae380",
    "TriggerRunnerSupervisor._create_workload": "3cc2cff157f57a8084226ca9171d68568be5a018d70b8a14739dc24ad5287cce",
    "DBDagBag.get_serialized_dag_model_for_run": "6dd0e4ace35badd97648b65373a4ff36c9c324493ca032e23e34528bdaffaaa0",
    "DBDagBag._version_from_dag_run": "61890cc6412233e02fce6db885bc40d4e6866446334295aa0b5f0b6794707a8d",
}
# The two ends of a task callback request that ``skip_success_callback_requests`` drops.
PINNED_CALLBACK_SOURCES = {
    "handle_event_submit[BaseTaskEndEvent]": "270677bbb4ecb4736a0aa38abd9e50c70af83458f1f4d95932b245278dff92fc",
    "dag_processing.processor._execute_task_callbacks": "bffc5c25ac96c6ae75eb82910defaa64118125708bf747a5ba3fac2b4fabadbd",
}


class _VersionCache:
    """Deserialized DAGs by version, least recently used first out (one event loop uses it)."""

    def __init__(self, size: int = DAG_CACHE_SIZE) -> None:
        self.size = size
        self.dags: OrderedDict[str, Any] = OrderedDict()

    def get(self, version: str) -> Any | None:
        if version in self.dags:
            self.dags.move_to_end(version)
            return self.dags[version]
        return None

    def put(self, version: str, dag: Any) -> Any:
        self.dags[version] = dag
        if len(self.dags) > self.size:
            self.dags.popitem(last=False)
        return dag


def reuse_deserialized_dags() -> bool:
    """Ship and rebuild each DAG version once per batch of triggers, not once per trigger.

    For every task that starts in the triggerer, Airflow 3.3's triggerer (1) deserializes the whole
    DAG in the supervisor, only to read the task's ``start_from_trigger`` (``_create_workload``),
    (2) sends the whole serialized DAG to the trigger runner inside that trigger's workload, and (3)
    rebuilds it there on the event loop, only to take the task for the template context
    (``TriggerRunner.create_runtime_ti``). The cost grows with the DAG's size times its tasks: for
    one 500-agent workflow, 500 rebuilds of a 500-task DAG on each side and one message of 500 copies
    of it. That message, written while the runner was itself blocked writing logs back, deadlocked
    the two processes (each waits for the other to read).

    A serialized DAG version never changes (a changed DAG is a new ``dag_version_id``), so: the
    supervisor keeps the deserialized DAG per version; within one batch of workloads only the first
    of each version carries the DAG, the others name the version (``DAG_REF_KEY``); the runner keeps
    the DAGs it rebuilt per version and takes the task from there. Once a batch has named as many
    versions as the runner's cache holds, the rest of it carries whole DAGs again, so a version
    named in a batch is still cached when its turn comes. The DAG and task objects are only read
    (templates are rendered on the trigger, not the task). The upstream change it stands in for:
    send each DAG version to the runner once, or only the task, and cache deserialized DAGs in the
    triggerer as the scheduler's DagBag does. True when applied.
    """
    from airflow import __version__ as airflow_version

    if not airflow_version.startswith(PATCHED_AIRFLOW):
        log.warning("Airflow %s: the triggerer ships and rebuilds the DAG for every trigger, as Airflow does it",
                    airflow_version)
        return False
    _supervisor_reuses_dags()
    _runner_reuses_dags()
    return True


class _LoadedDag:
    """What ``_create_workload`` reads of a SerializedDagModel (``data``, ``dag``), kept per version
    instead of the ORM row: the row's JSON is decoded again on every load."""

    def __init__(self, data: dict[str, Any], dag_version_id: Any) -> None:
        self.data = data
        self.dag_version_id = dag_version_id

    @cached_property
    def dag(self) -> Any:
        from airflow.serialization.serialized_objects import DagSerialization

        return DagSerialization.from_dict(self.data)


class _DagBagByVersion:
    """The DBDagBag that ``_create_workload`` is given, answering its two lookups from the cache."""

    def __init__(self, bag: Any, cache: _VersionCache) -> None:
        self.bag, self.cache = bag, cache

    def get_serialized_dag_model(self, version_id: Any, session: Any) -> _LoadedDag | None:
        found = self.cache.get(str(version_id))
        if found is not None:
            return found  # type: ignore[no-any-return]
        model = self.bag.get_serialized_dag_model(version_id=version_id, session=session)
        if model is None or model.data is None:
            return None
        return self.cache.put(str(version_id), _LoadedDag(model.data, model.dag_version_id))  # type: ignore[no-any-return]

    def get_serialized_dag_model_for_run(self, dag_run: Any, *, session: Any) -> _LoadedDag | None:
        version_id = self._version_of_run(dag_run, session)
        return self.get_serialized_dag_model(version_id=version_id, session=session) if version_id else None

    def _version_of_run(self, dag_run: Any, session: Any) -> Any:
        """Airflow's resolution (``DBDagBag._version_from_dag_run``), asked once per DAG and batch.

        A run without a version of its own (every run from an unversioned bundle, such as the local
        dags folder) resolves to its DAG's latest version, which Airflow looked up once per trigger:
        a query per agent on the supervisor's loop, 250 for a burst of 250. Within one batch (one
        DBDagBag) the answer is the same for every run of a DAG with the same recorded version.
        """
        if dag_run.bundle_version and dag_run.created_dag_version_id:
            return dag_run.created_dag_version_id
        known = _VERSIONS_IN_BATCH.setdefault(self.bag, {})
        key = (dag_run.dag_id, dag_run.created_dag_version_id)
        if key not in known:
            known[key] = type(self.bag)._version_from_dag_run(dag_run=dag_run, session=session)
        return known[key]


# Each batch's resolved run versions, by the DBDagBag that ``build_trigger_workloads`` makes for it.
_VERSIONS_IN_BATCH: WeakKeyDictionary[Any, dict[tuple[str, Any], Any]] = WeakKeyDictionary()


def _supervisor_create_workload(create: Any) -> Any:
    """Airflow's ``_create_workload`` (``create``), given a dag bag that keeps each version it loads."""
    cache = _VersionCache()

    def create_from_cache(self: Any, trigger: Any, dag_bag: Any, render_log_fname: Any, session: Any) -> Any:
        return create(self, trigger=trigger, dag_bag=_DagBagByVersion(dag_bag, cache),
                      render_log_fname=render_log_fname, session=session)

    return create_from_cache


def _supervisor_reuses_dags() -> None:
    from airflow.jobs.triggerer_job_runner import TriggerRunnerSupervisor

    TriggerRunnerSupervisor._create_workload = _supervisor_create_workload(  # type: ignore[method-assign]
        TriggerRunnerSupervisor._create_workload)
    build = TriggerRunnerSupervisor.build_trigger_workloads

    def send_each_dag_once_per_batch(self: TriggerRunnerSupervisor, new_trigger_ids: set[int]) -> list[Any]:
        sent: set[str] = set()
        batch = []
        for workload in build(self, new_trigger_ids):
            if workload.dag_data and workload.ti is not None:
                version = str(workload.ti.dag_version_id)
                # A reference is safe while the batch has named fewer versions than the runner keeps.
                if version in sent and len(sent) < DAG_CACHE_SIZE:
                    workload = workload.model_copy(update={"dag_data": {DAG_REF_KEY: version}})
                sent.add(version)
            batch.append(workload)
        return batch

    TriggerRunnerSupervisor.build_trigger_workloads = send_each_dag_once_per_batch  # type: ignore[method-assign]


def _runner_reuses_dags() -> None:
    from airflow.jobs.triggerer_job_runner import TriggerRunner
    from airflow.serialization.serialized_objects import DagSerialization

    cache = _VersionCache()

    def deserialized(encoded_dag: dict[str, Any], version: str) -> Any:
        if DAG_REF_KEY in encoded_dag:
            dag = cache.get(encoded_dag[DAG_REF_KEY])
            if dag is None:  # TypeError: Airflow fails the trigger ("failed to inflate") and the task with it
                raise TypeError(f"DAG version {version} was sent earlier in this batch but is no longer cached")
            return dag
        return cache.get(version) or cache.put(version, DagSerialization.from_dict(encoded_dag))

    def create_runtime_ti(cls: type[TriggerRunner], task_instance: Any, encoded_dag: dict[str, Any],
                          dag_run_data: dict[str, Any]) -> Any:
        # Airflow 3.3's body (PINNED_SOURCES), with the DAG taken from the cache.
        from airflow.api_fastapi.execution_api.datamodels.taskinstance import DagRun as DRDataModel
        from airflow.sdk.api.datamodels._generated import TIRunContext
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        task = deserialized(encoded_dag, str(task_instance.dag_version_id)).get_task(task_instance.task_id)
        return RuntimeTaskInstance.model_construct(
            **task_instance.model_dump(exclude_unset=True),
            task=task,
            _ti_context_from_server=TIRunContext.model_construct(
                dag_run=DRDataModel(**dag_run_data),
                max_tries=task.retries,
            ),
        )

    TriggerRunner.create_runtime_ti = classmethod(create_runtime_ti)  # type: ignore[assignment,method-assign]


def skip_success_callback_requests() -> bool:
    """Do not queue, for every task a trigger ends successfully, a callback that nothing runs.

    When a trigger ends its task (``TaskSuccessEvent``), Airflow 3.3's ``handle_event_submit``
    stores a ``TaskCallbackRequest`` for it, whether or not the task has any callback; the
    dag-processor takes them 20 at a time, parses the DAG file again for each batch, and then does
    not run a success request at all (``_execute_task_callbacks`` runs failure and retry callbacks
    only, and logs "not a failure callback"). For a workflow of 500 agents that is about 25 parses
    of a 500-task DAG file (about 1 s each here) competing with the triggerer for the CPU, for
    nothing. Failure and retry requests still go through. The upstream change it stands in for:
    send a task callback request only when the task has a callback of that kind (the scheduler's
    own paths check ``has_on_failure_callback`` first). True when applied."""
    from airflow import __version__ as airflow_version

    if not airflow_version.startswith(PATCHED_AIRFLOW):
        log.warning("Airflow %s: every task a trigger ends queues a callback request, as Airflow does it", airflow_version)
        return False
    from airflow.callbacks.callback_requests import TaskCallbackRequest
    from airflow.callbacks.database_callback_sink import DatabaseCallbackSink

    send = DatabaseCallbackSink.send

    def send_unless_never_run(self: DatabaseCallbackSink, callback: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(callback, TaskCallbackRequest) and not callback.is_failure_callback:
            return
        send(self, callback, *args, **kwargs)

    DatabaseCallbackSink.send = send_unless_never_run  # type: ignore[method-assign]
    return True


#: True in a triggerer started here (and in its trigger runner, forked from it) once a permanent
#: failure can end its task in the triggerer without a retry (``end_permanent_failures_here``).
ENDS_PERMANENT_FAILURES = False


def end_permanent_failures_here() -> bool:
    """Let a trigger end its task as failed for good, as ``AirflowFailException`` does on a worker.

    A trigger ends a task with ``TaskFailedEvent``, and Airflow 3.3 then retries it whenever the task
    has retries left: nothing in the event can say "this cannot succeed". So an agent refused by its
    budget, or answered 400 or 401, had to resume on a worker only to raise ``AirflowFailException``:
    one worker process per refusal, queued for a worker slot (334 refusals of one run kept it going
    for 573 s on 8 slots, while the money was settled within seconds). Here the supervisor reads our
    cost record in the event: a permanent error type ends the task failed without a retry, the rest
    of Airflow's handling unchanged (XComs, callbacks). Events without our record are Airflow's.
    The upstream change it stands in for: a ``TaskFailedEvent`` that can ask for no retry. True when
    applied; the source it relies on is pinned in ``PINNED_CALLBACK_SOURCES``."""
    global ENDS_PERMANENT_FAILURES
    from airflow import __version__ as airflow_version

    if not airflow_version.startswith(PATCHED_AIRFLOW):
        log.warning("Airflow %s: a permanent agent failure ends on a worker", airflow_version)
        return False
    from airflow.models.trigger import handle_event_submit
    from airflow.triggers.base import BaseTaskEndEvent, TaskFailedEvent

    from erp_agents.costs.record import COST_XCOM_KEY
    from erp_agents.exceptions import is_permanent

    end_task = handle_event_submit.registry[BaseTaskEndEvent]

    def end_failed_task(event: TaskFailedEvent, *, task_instance: Any, session: Any) -> None:
        record = (event.xcoms or {}).get(COST_XCOM_KEY)
        if not (isinstance(record, dict) and is_permanent(str(record.get("error_type") or ""))):
            return end_task(event, task_instance=task_instance, session=session)  # type: ignore[no-any-return]
        task_instance.is_eligible_to_retry = lambda: False  # what Airflow asks to choose a retry
        try:
            return end_task(event, task_instance=task_instance, session=session)  # type: ignore[no-any-return]
        finally:
            del task_instance.is_eligible_to_retry

    handle_event_submit.register(TaskFailedEvent, end_failed_task)
    ENDS_PERMANENT_FAILURES = True
    return True


def warm_imports() -> None:
    """Import, before Airflow forks the trigger runner, what the first agents would otherwise import
    on its event loop: the SDKs (anthropic alone took 3.8 s there) and their resources, pydantic-ai's
    models, the provider hooks, the tool registry and the tokenizer (py-spy found the hooks, tools and
    SDK resources still imported there during a first 500-agent burst). The runner inherits them; the loop stays free when the first burst of agents starts."""
    import anthropic
    import openai
    import pydantic_ai.models.anthropic  # noqa: F401
    import pydantic_ai.models.openai  # noqa: F401
    from genai_prices import data  # noqa: F401  (1 s to compile where no bytecode is cached)

    # The triggers import what runs them in run() (DAG files import the trigger modules): here, once.
    import erp_agents.operators.for_each  # noqa: F401
    import erp_agents.operators.summary  # noqa: F401
    import erp_agents.triggers.agent  # noqa: F401
    import erp_agents.triggers.errors  # noqa: F401
    import erp_agents.triggers.fanout  # noqa: F401
    import erp_agents.triggers.items  # noqa: F401
    import erp_agents.triggers.runner  # noqa: F401
    import erp_agents.triggers.summary  # noqa: F401
    from erp_agents.limits.estimate import o200k
    from erp_agents.tools.registry import default_registry

    o200k()
    default_registry()  # the tool modules and the entry points they are registered under
    # The SDKs import a resource's modules when a client first reaches it (``client.chat.completions``
    # loads and, without cached bytecode, compiles them: 0.4 s on a busy loop): reach them here the way
    # pydantic-ai's models do. No request is made; the clients are dropped.
    openai_client = openai.AsyncOpenAI(api_key="warm-up", base_url=WARM_UP_URL)
    _ = openai_client.chat.completions, openai_client.responses
    _ = anthropic.AsyncAnthropic(api_key="warm-up", base_url=WARM_UP_URL).beta.messages
    from erp_agents.costs.pricing import TokenCounts, quote

    quote("gpt-4o-mini", TokenCounts(1, 1), provider_type="openai")  # genai-prices builds its lookups on first use
    for provider_hook in ("airflow.providers.openai.hooks.openai", "airflow.providers.anthropic.hooks.anthropic"):
        try:  # the hooks that read the connections: a provider package that is not installed is fine
            importlib.import_module(provider_hook)
        except ImportError:
            continue


def prepare_the_collector_for_bursts() -> int:
    """Freeze the imports (about 430,000 objects) before Airflow forks the trigger runner, which
    inherits both the frozen generation and the thresholds (``stack.collector`` says why)."""
    return freeze_what_is_loaded()


def main(argv: list[str] | None = None) -> None:
    from erp_agents.stack.event_batch import record_task_ends_together
    from erp_agents.stack.event_xcoms import record_xcoms_with_the_state
    from erp_agents.stack.runner_logs import close_logs_after_their_last_line, send_runner_logs_from_a_thread
    from erp_agents.stack.supervisor_send import send_without_blocking_the_runner
    from erp_agents.stack.supervisor_xcom import read_xcoms_from_the_database
    from erp_agents.stack.trigger_claim import claim_fair_share
    from erp_agents.stack.triggerer_loop import pace_claims, sync_runner_often

    build_client_at_start()
    build_execution_api_now()
    claim_fair_share()
    pace_claims()
    runner_sends_log_markers = sync_runner_often()
    reuse_deserialized_dags()
    skip_success_callback_requests()
    record_xcoms_with_the_state()  # before end_permanent_failures_here, which calls what is registered
    record_task_ends_together()
    read_xcoms_from_the_database()
    send_without_blocking_the_runner()
    if send_runner_logs_from_a_thread() and runner_sends_log_markers:
        close_logs_after_their_last_line()  # the runner's loop queues the markers it waits for
    end_permanent_failures_here()
    warm_imports()
    # One INFO line per HTTP request from httpx doubles what every agent request writes to the
    # trigger log channel; our own line per model request says more (tokens, cost, latency, retries).
    for name in ("httpx", "httpx2"):  # httpx2: the copy of httpx the OpenAI SDK ships
        logging.getLogger(name).setLevel(logging.WARNING)
    prepare_the_collector_for_bursts()
    from airflow.__main__ import main as airflow_main

    sys.argv = ["airflow", "triggerer", *(sys.argv[1:] if argv is None else argv)]
    airflow_main()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    # Run as the package's module, not as ``__main__``: its flags are read by that name in the trigger
    # runner (``ENDS_PERMANENT_FAILURES``).
    from erp_agents.stack.triggerer import main as run_triggerer

    run_triggerer()
