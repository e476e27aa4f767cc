"""A task a trigger ends stores its XComs in three statements, and the rows are the ones Airflow's
``XComModel.set`` writes, on a migrated metadata database."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pendulum
import pytest
from sqlalchemy import event, select, text

COLUMNS = ("key", "value", "map_index", "dag_run_id", "dag_result")


def test_pushed_xcoms_are_the_rows_xcom_model_set_writes_in_fewer_statements(airflow_db):
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunType

    from erp_agents.stack.event_xcoms import push_xcoms

    dag_id, run_id = f"xcom_writes_{uuid.uuid4().hex[:8]}", "manual__1"
    xcoms = {"return_value": {"output": "ok", "agent": "reviewer"}, "cost_record": {"calls": 1, "cost_usd": 0.25}}
    with create_session() as session:
        session.execute(text("PRAGMA foreign_keys=OFF"))  # XComs without the task instances they name
        now = pendulum.now("UTC")
        session.add(DagRun(dag_id=dag_id, run_id=run_id, run_type=DagRunType.MANUAL, state=DagRunState.RUNNING,
                           logical_date=now, run_after=now))
        session.flush()
        for key, value in xcoms.items():
            XComModel.set(key=key, value=value, dag_id=dag_id, task_id="by_airflow", run_id=run_id, map_index=3,
                          session=session)
        statements: list[str] = []
        event.listen(session.get_bind(), "before_cursor_execute", lambda *args: statements.append(args[2]))
        ours = SimpleNamespace(dag_id=dag_id, run_id=run_id, task_id="by_us", map_index=3)
        push_xcoms(ours, {"return_value": "an earlier try's answer"}, session)
        statements.clear()
        push_xcoms(ours, xcoms, session)  # replaces the earlier row, as XComModel.set does
        assert len(statements) == 3, statements

        def rows(task_id: str) -> list[tuple]:
            found = session.execute(select(XComModel).where(XComModel.dag_id == dag_id, XComModel.task_id == task_id)
                                    .order_by(XComModel.key)).scalars()
            return [tuple(getattr(row, column) for column in COLUMNS) for row in found]

        assert rows("by_us") == rows("by_airflow") and len(rows("by_us")) == 2
        pulled = session.scalars(XComModel.get_many(run_id=run_id, dag_ids=dag_id, task_ids="by_us", key="cost_record",
                                                    map_indexes=3)).one()
        assert XComModel.deserialize_value(pulled) == xcoms["cost_record"]
        with pytest.raises(ValueError, match="DAG run not found"):
            push_xcoms(SimpleNamespace(dag_id=dag_id, run_id="no_such_run", task_id="t", map_index=-1), xcoms, session)
