"""A turn's task successes are recorded in one transaction, with the rows Airflow's one-by-one
``Trigger.submit_event`` writes, on a migrated metadata database; what cannot go in the batch is left,
in order, to Airflow; a batch that fails leaves nothing behind."""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select, text

from erp_agents.stack import event_batch, event_xcoms

AGENT_XCOMS = {"return_value": {"output": "ok", "agent": "reviewer"}, "cost_record": {"calls": 1, "cost_usd": 0.25}}


@pytest.fixture
def xcoms_in_session(airflow_db) -> Iterator[None]:
    """The triggerer's handler of task ends (``record_xcoms_with_the_state``), which the batch needs."""
    from airflow.models.trigger import handle_event_submit
    from airflow.triggers.base import BaseTaskEndEvent

    original = handle_event_submit.registry[BaseTaskEndEvent]
    assert event_xcoms.record_xcoms_with_the_state() is True
    try:
        yield
    finally:
        handle_event_submit.register(BaseTaskEndEvent, original)


def deferred_run(tasks: list[str], *, watched: set[str] = frozenset()) -> tuple[str, str, dict[str, int]]:
    """A DAG run whose ``tasks`` are deferred, each on a trigger of its own; the triggers of ``watched``
    tasks also feed an asset. Returns the DAG id, the run id and each task's trigger id."""
    from airflow.models.asset import AssetModel, AssetWatcherModel
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState
    from airflow.utils.types import DagRunType

    dag_id, run_id = f"event_batch_{uuid.uuid4().hex[:8]}", "manual__1"
    with DAG(dag_id, schedule=None):
        operators = {task_id: EmptyOperator(task_id=task_id) for task_id in tasks}
    triggers: dict[str, int] = {}
    with create_session() as session:
        session.execute(text("PRAGMA foreign_keys=OFF"))  # task instances without a serialized DAG version
        now = pendulum.now("UTC")
        session.add(DagRun(dag_id=dag_id, run_id=run_id, run_type=DagRunType.MANUAL, state=DagRunState.RUNNING,
                           logical_date=now, run_after=now))
        for task_id, operator in operators.items():
            trigger = Trigger(classpath="erp_agents.triggers.agent.AgentTrigger", kwargs={})
            session.add(trigger)
            session.flush()
            triggers[task_id] = trigger.id
            ti = TaskInstance(task=operator, dag_version_id=uuid.uuid4(), run_id=run_id,
                              state=TaskInstanceState.DEFERRED)
            ti.trigger_id, ti.start_date, ti.try_number = trigger.id, now, 1
            session.add(ti)
            if task_id in watched:
                asset = AssetModel(name=f"{dag_id}_{task_id}", uri=f"s3://bucket/{dag_id}/{task_id}")
                session.add(asset)
                session.flush()
                session.add(AssetWatcherModel(name=f"watch_{task_id}", asset_id=asset.id, trigger_id=trigger.id))
    return dag_id, run_id, triggers


def task_rows(dag_id: str) -> dict[str, tuple[Any, ...]]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.scalars(select(TaskInstance).where(TaskInstance.dag_id == dag_id)).all()
        xcoms = session.scalars(select(XComModel).where(XComModel.dag_id == dag_id)).all()
        return {ti.task_id: (ti.state, ti.trigger_id, ti.end_date is not None,
                             sorted((x.key, x.value, x.map_index, x.dag_run_id) for x in xcoms if x.task_id == ti.task_id))
                for ti in tis}


@contextmanager
def counted_statements(engine: Any) -> Iterator[list[str]]:
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa_event.listen(engine, "before_cursor_execute", seen)
    try:
        yield statements
    finally:
        sa_event.remove(engine, "before_cursor_execute", seen)


def success(task_id: str) -> Any:
    from airflow.triggers.base import TaskSuccessEvent

    return TaskSuccessEvent(xcoms={**AGENT_XCOMS, "return_value": {"output": f"answer of {task_id}"}})


def test_successes_recorded_together_write_what_airflow_writes_one_by_one(xcoms_in_session):
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session

    tasks = [f"agent_{i}" for i in range(6)]
    ours_dag, _, ours = deferred_run(tasks)
    airflows_dag, _, airflows = deferred_run(tasks)

    with create_session() as probe:
        engine = probe.get_bind().engine
    with counted_statements(engine) as airflows_statements:
        for task_id in tasks:
            Trigger.submit_event(airflows[task_id], success(task_id))
    with counted_statements(engine) as statements:
        recorded = event_batch.record_successes({ours[t]: success(t) for t in tasks})
    assert recorded == set(ours.values())

    mine, theirs = task_rows(ours_dag), task_rows(airflows_dag)
    assert {t: (state, trigger, ended) for t, (state, trigger, ended, _) in mine.items()} == {
        t: ("success", None, True) for t in tasks}
    same_run = lambda rows: [(key, value, map_index) for key, value, map_index, _ in rows]  # noqa: E731
    assert {t: same_run(r[3]) for t, r in mine.items()} == {t: same_run(r[3]) for t, r in theirs.items()}
    assert all(len(r[3]) == 2 for r in mine.values())
    # the triggers, their asset watchers and callbacks, the task instances, one update per task, the
    # runs' ids, one delete and one insert for every XCom; Airflow's one by one takes ~9 a task
    assert len(statements) == 7 + len(tasks), statements
    assert len(airflows_statements) >= 8 * len(tasks), airflows_statements




def supervisor_with(entries: list[Any]) -> Any:
    """What ``record_successes_first`` uses of Airflow's ``TriggerRunnerSupervisor``."""
    return SimpleNamespace(events=deque(entries), persisted_event_seqs=deque(), team_name=None)


def entry(trigger_id: int, event: Any, seq: int | None = None) -> Any:
    from airflow.jobs.triggerer_job_runner import TriggerEventEntry

    return TriggerEventEntry(trigger_id=trigger_id, event=event, persist_seq=seq)


def test_what_cannot_go_together_is_left_to_airflow_in_its_order(xcoms_in_session):
    from airflow.triggers.base import TriggerEvent

    dag_id, _, triggers = deferred_run(["a", "b", "resumed", "twice", "watched"], watched={"watched"})
    a, b = entry(triggers["a"], success("a"), seq=11), entry(triggers["b"], success("b"))
    resumed = entry(triggers["resumed"], TriggerEvent({"status": "done"}))  # resumes on a worker
    twice = [entry(triggers["twice"], success("twice")), entry(triggers["twice"], success("twice"))]
    watched = entry(triggers["watched"], success("watched"))  # its trigger feeds an asset
    supervisor = supervisor_with([a, resumed, twice[0], b, watched, twice[1]])

    event_batch.record_successes_first(supervisor)

    assert list(supervisor.events) == [resumed, twice[0], watched, twice[1]]
    assert list(supervisor.persisted_event_seqs) == [11]
    states = {task: row[0] for task, row in task_rows(dag_id).items()}
    assert states == {"a": "success", "b": "success", "resumed": "deferred", "twice": "deferred", "watched": "deferred"}


def test_a_batch_that_fails_is_rolled_back_and_every_event_stays(xcoms_in_session, monkeypatch):
    dag_id, _, triggers = deferred_run(["a", "b"])
    entries = [entry(triggers["a"], success("a"), seq=1), entry(triggers["b"], success("b"), seq=2)]
    supervisor = supervisor_with(entries)

    def store_down(pushes: Any, session: Any) -> None:
        raise RuntimeError("the XCom table is locked")

    monkeypatch.setattr(event_xcoms, "write_xcoms", store_down)
    event_batch.record_successes_first(supervisor)

    assert list(supervisor.events) == entries and not supervisor.persisted_event_seqs
    assert {task: row[:2] for task, row in task_rows(dag_id).items()} == {
        "a": ("deferred", triggers["a"]), "b": ("deferred", triggers["b"])}
