"""The scheduler's deferral of start-from-trigger tasks, with the trigger linked rather than flushed per
task, writes on a migrated metadata database exactly the rows Airflow's own ``defer_task`` writes, in
far fewer statements."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pendulum
import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select, text

from erp_agents.stack import scheduler_defer

TASKS = 12


@pytest.fixture
def airflows_defer_task(airflow_db) -> Iterator[Any]:
    """Airflow's own ``defer_task``, restored after the test replaced it."""
    from airflow.models.taskinstance import TaskInstance

    original = TaskInstance.defer_task
    try:
        yield original
    finally:
        TaskInstance.defer_task = original  # type: ignore[method-assign]


def scheduled_run(prefix: str) -> tuple[str, list[Any], Any]:
    """A running DAG run of ``TASKS`` tasks that start in the triggerer (as agents do) and one that does
    not, none scheduled yet. Returns the DAG id, its task instances and the open session holding them."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.sdk import DAG, BaseOperator
    from airflow.triggers.base import StartTriggerArgs
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunType

    class StartsInTriggerer(BaseOperator):
        start_from_trigger = True
        start_trigger_args = StartTriggerArgs(
            trigger_cls="erp_agents.triggers.agent.AgentTrigger", next_method="execute_complete",
            trigger_kwargs={"agent": "reviewer", "prompt": "review"}, next_kwargs={"attempt": 1},
            timeout=timedelta(minutes=30))

    dag_id, run_id = f"{prefix}_{uuid.uuid4().hex[:8]}", "manual__1"
    with DAG(dag_id, schedule=None):
        operators = [StartsInTriggerer(task_id=f"agent_{i}", execution_timeout=timedelta(minutes=10))
                     for i in range(TASKS)]
        operators.append(BaseOperator(task_id="on_a_worker"))
    session = create_session().__enter__()
    session.execute(text("PRAGMA foreign_keys=OFF"))  # task instances without a serialized DAG version
    now = pendulum.now("UTC")
    run = DagRun(dag_id=dag_id, run_id=run_id, run_type=DagRunType.MANUAL, state=DagRunState.RUNNING,
                 logical_date=now, run_after=now)
    session.add(run)
    tis = [TaskInstance(task=operator, dag_version_id=uuid.uuid4(), run_id=run_id) for operator in operators]
    session.add_all(tis)
    session.commit()
    return dag_id, tis, (run, session)


def written_rows(dag_id: str) -> dict[str, tuple[Any, ...]]:
    """Each task's row and its trigger's, less what differs from run to run (ids, times)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = {}
        for ti in session.scalars(select(TaskInstance).where(TaskInstance.dag_id == dag_id)):
            trigger = session.get(Trigger, ti.trigger_id) if ti.trigger_id else None
            timeout_after_start = ti.trigger_timeout - ti.start_date if ti.trigger_timeout else None
            rows[ti.task_id] = (ti.state, ti.try_number, ti.next_method, ti.next_kwargs, timeout_after_start,
                                trigger and (trigger.classpath, trigger.kwargs, trigger.triggerer_id))
        return rows


@contextmanager
def counted_flushes(session: Any) -> Iterator[list[int]]:
    """How many rows each flush of ``session`` wrote."""
    flushes: list[int] = []

    def flushed(session: Any, context: Any, instances: Any) -> None:
        flushes.append(len(session.new) + len(session.dirty))

    sa_event.listen(session, "before_flush", flushed)
    try:
        yield flushes
    finally:
        sa_event.remove(session, "before_flush", flushed)


def schedule(prefix: str) -> tuple[str, list[int]]:
    dag_id, tis, (run, session) = scheduled_run(prefix)
    try:
        with counted_flushes(session) as flushes:
            run.schedule_tis(tis, session=session)
            session.commit()
    finally:
        session.close()
    return dag_id, [rows for rows in flushes if rows]


def test_deferring_in_bulk_writes_what_airflow_writes_task_by_task_in_few_statements(airflows_defer_task):
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.state import TaskInstanceState

    airflows_dag, airflows_flushes = schedule("defer_airflow")
    assert scheduler_defer.defer_in_bulk() is True
    assert TaskInstance.defer_task is not airflows_defer_task
    ours_dag, our_flushes = schedule("defer_bulk")

    ours, airflows = written_rows(ours_dag), written_rows(airflows_dag)
    assert ours == airflows
    agents = [ours[f"agent_{i}"] for i in range(TASKS)]
    assert {row[0] for row in agents} == {TaskInstanceState.DEFERRED}
    assert agents[0][2:] == ("execute_complete", {"attempt": 1}, timedelta(minutes=10),  # the shorter timeout
                             ("erp_agents.triggers.agent.AgentTrigger", {"agent": "reviewer", "prompt": "review"},
                              None))
    assert ours["on_a_worker"][:2] == (TaskInstanceState.SCHEDULED, 1)

    assert len(airflows_flushes) >= TASKS  # a flush per deferred task
    assert len(our_flushes) == 1  # the triggers and the tasks of a loop, written together


def test_the_metadata_dbs_driver_inserts_a_flushs_triggers_in_one_statement():
    """What makes one flush cheaper than many on PostgreSQL: SQLAlchemy inserts the triggers in one
    ``INSERT ... RETURNING`` (SQLite, without a sentinel column, still inserts them one by one)."""
    from airflow.models.trigger import Trigger
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from tests.services import fresh_postgres_database

    engine = create_engine(fresh_postgres_database("erp_agents_test_defer"))
    Trigger.metadata.create_all(engine, tables=[Trigger.metadata.tables["team"], Trigger.__table__])
    statements: list[str] = []
    sa_event.listen(engine, "before_cursor_execute", lambda conn, cursor, statement, *args: statements.append(statement))
    with Session(engine) as session:
        triggers = [Trigger(classpath="erp_agents.triggers.agent.AgentTrigger", kwargs={"item": i}) for i in range(TASKS)]
        session.add_all(triggers)
        session.flush()
        ids = [trigger.id for trigger in triggers]  # each object got its own row's id, in order
        assert ids == sorted(set(ids)) == list(session.scalars(select(Trigger.id).order_by(Trigger.id)))
    engine.dispose()
    assert sum(s.lstrip().upper().startswith("INSERT INTO TRIGGER") for s in statements) == 1


def test_each_task_points_at_its_own_trigger(airflows_defer_task):
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session

    assert scheduler_defer.defer_in_bulk() is True
    dag_id, _ = schedule("defer_own")
    with create_session() as session:
        pairs = session.execute(select(TaskInstance.task_id, Trigger.id, Trigger.created_date)
                                .join(Trigger, Trigger.id == TaskInstance.trigger_id)
                                .where(TaskInstance.dag_id == dag_id)).all()
    assert len(pairs) == TASKS and len({trigger_id for _, trigger_id, _ in pairs}) == TASKS
