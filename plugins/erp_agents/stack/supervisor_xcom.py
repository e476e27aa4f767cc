"""The triggerer's supervisor answers its triggers' XCom reads from the metadata database directly.

Every XCom a trigger reads (an agent its upstream agents' outputs, a fan-out chunk its items, the
summary every agent's answer and cost record) goes to the triggerer's supervisor, which in Airflow
3.3 answers it through its in-process copy of the execution API: an HTTP request through httpx,
a2wsgi, Cadwyn's version migration and FastAPI's dependency solving, around one SELECT. The
supervisor serves one request at a time for every trigger of its triggerer, so with hundreds of
agents those reads queue: py-spy on a 500-agent run put the framework at about two thirds of each
read, and the summary's 1,000 reads kept one supervisor busy for seconds after the last agent.

Here a ``GetXCom`` is answered with the execution API route's own query (``XComModel.get_many``, the
same map index and prior-dates rules, the raw stored value, no XCom backend) on the supervisor's own
autocommit connection (``supervisor_db``: no checkout and pre-ping per read), and turned into the
same ``XComResult`` the API client would have given, ``value=None`` when there is none. The
supervisor is Airflow's own server-side process with database access, and its in-process API grants
every read anyway, so nothing about access changes. The upstream change it stands in for: let the
triggerer's supervisor serve reads without the HTTP layer. Applied only to the Airflow versions it was
checked against; the sources it mirrors are pinned in ``PINNED_XCOM_SOURCES``
(tests/unit/stack/test_supervisor_xcom.py fails when one changes;
tests/integration/test_supervisor_xcom_reads.py compares the answers with Airflow's own handler).
"""

from __future__ import annotations

import logging
from typing import Any

from erp_agents.stack import supervisor_db

log = logging.getLogger(__name__)

PATCHED_AIRFLOW = ("3.3.",)
PINNED_XCOM_SOURCES = {
    "request_handlers.handle_get_xcom": "b291539b4b30c496ae0fdd9707c77b632c2c4aa249b8506b50e9b56cc7faf98a",
    "execution_api.routes.xcoms.get_xcom": "d951cefe5dc6bd7d77b4c4bf1f9dd876bdc9d366f3b4239702b3df79df3082b9",
    "XComOperations.get": "5c823423240692f9e3098d11933b81edcf0150c03f4b94046533c6c2d43a5f1f",
}


def read_xcom(msg: Any) -> tuple[Any, dict[str, bool]]:
    """What ``handle_get_xcom`` returns for ``msg`` (a ``GetXCom``), read from the database."""
    from airflow.models.xcom import XComModel
    from airflow.sdk.api.datamodels._generated import XComResponse
    from airflow.sdk.execution_time.comms import XComResult
    from sqlalchemy.orm import Session

    map_index = msg.map_index if msg.map_index is not None and msg.map_index >= 0 else -1
    query = XComModel.get_many(
        run_id=msg.run_id, key=msg.key, task_ids=msg.task_id, dag_ids=msg.dag_id,
        include_prior_dates=msg.include_prior_dates,
    ).where(XComModel.map_index == map_index)

    def first_value(connection: Any) -> tuple[bool, Any]:
        with Session(bind=connection) as session:
            row = session.scalars(query.limit(1)).first()
            return row is not None, None if row is None else row.value

    found, value = supervisor_db.read(first_value)
    if not found:
        log.debug("XCom %s of %s.%s[%s] in %s not found", msg.key, msg.dag_id, msg.task_id, map_index, msg.run_id)
    return XComResult.from_xcom_response(XComResponse(key=msg.key, value=value)), {"exclude_unset": True}


def read_xcoms_from_the_database() -> bool:
    """Make the triggerer's supervisor answer ``GetXCom`` with ``read_xcom``; True when applied."""
    from airflow import __version__ as airflow_version

    if not airflow_version.startswith(PATCHED_AIRFLOW):
        log.warning("Airflow %s: the triggerer reads XComs through its in-process execution API", airflow_version)
        return False
    from airflow.jobs import triggerer_job_runner

    triggerer_job_runner.handle_get_xcom = lambda client, msg: read_xcom(msg)  # type: ignore[assignment]
    return True
