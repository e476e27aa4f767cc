"""The triggerer's supervisor reads XComs from the database: the same answers as Airflow's own
handler through the in-process execution API, on a migrated metadata database."""

from __future__ import annotations

import uuid

import pendulum
import pytest
from sqlalchemy import text


def test_direct_reads_answer_as_the_execution_api_does(airflow_db, monkeypatch):
    from airflow.api_fastapi.execution_api.app import InProcessExecutionAPI
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from airflow.sdk.api.client import Client
    from airflow.sdk.execution_time.comms import GetXCom
    from airflow.sdk.execution_time.request_handlers import handle_get_xcom
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunType

    from erp_agents.stack.supervisor_xcom import read_xcom

    dag_id, run_id = f"xcom_reads_{uuid.uuid4().hex[:8]}", "manual__1"
    with create_session() as session:
        assert session.get_bind().dialect.name == "sqlite"
        session.execute(text("PRAGMA foreign_keys=OFF"))  # XComs without the task instances they name
        now = pendulum.now("UTC")
        session.add(DagRun(dag_id=dag_id, run_id=run_id, run_type=DagRunType.MANUAL, state=DagRunState.RUNNING,
                           logical_date=now, run_after=now))
        session.flush()
        for task_id, key, value, map_index in (
            ("agent", "return_value", {"output": "ok", "agent": "agent"}, -1),
            ("agent", "cost_record", {"calls": 1, "cost_usd": 0.5}, -1),
            ("chunks", "chunk_2", [{"index": 4}, {"index": 5}], -1),
            ("reviewer", "items", ["a", "b"], 3),
        ):
            XComModel.set(key=key, value=value, dag_id=dag_id, task_id=task_id, run_id=run_id, map_index=map_index,
                          session=session)

    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "a-test-secret-of-some-length")
    client = Client(base_url=None, token="", dry_run=True, transport=InProcessExecutionAPI().transport)
    client.base_url = "http://in-process.invalid./"
    asks = [
        GetXCom(key="return_value", dag_id=dag_id, run_id=run_id, task_id="agent"),
        GetXCom(key="cost_record", dag_id=dag_id, run_id=run_id, task_id="agent", map_index=-1),
        GetXCom(key="chunk_2", dag_id=dag_id, run_id=run_id, task_id="chunks"),
        GetXCom(key="items", dag_id=dag_id, run_id=run_id, task_id="reviewer", map_index=3),
        GetXCom(key="items", dag_id=dag_id, run_id=run_id, task_id="reviewer"),  # map index -1: none there
        GetXCom(key="missing", dag_id=dag_id, run_id=run_id, task_id="agent"),
    ]
    for ask in asks:
        ours, our_opts = read_xcom(ask)
        airflows, airflow_opts = handle_get_xcom(client, ask)
        assert (ours.model_dump(**our_opts), our_opts) == (airflows.model_dump(**airflow_opts), airflow_opts), ask
    assert read_xcom(asks[3])[0].value is not None and read_xcom(asks[5])[0].value is None
