"""A task a trigger ends is recorded in one transaction: its state and its XComs commit together.

When a trigger ends its task (``TaskSuccessEvent`` or ``TaskFailedEvent`` with ``xcoms``), Airflow
3.3's ``handle_event_submit`` pushes each XCom with ``task_instance.xcom_push(key, value)`` and no
session. ``provide_session`` then opens the thread's scoped session again, and its ``create_session``
commits and closes it after each push: the task's new state is committed with the first XCom, each
further XCom is a transaction of its own, and the rest of ``Trigger.submit_event`` runs on a closed
session that loads its objects again. Two costs follow:

- a crash between those commits leaves a successful task without its cost record, or without its
  answer, for downstream agents that then start;
- the triggerer's supervisor records events one at a time, and for an agent (answer plus cost
  record) this was three commits and their reloads: py-spy put recording events at about 11 ms of
  supervisor CPU per agent, the largest share of the supervisor's work in a 500-agent burst.

Here the XComs are pushed with the caller's session, so ``submit_event`` commits once, the state and
every XCom together. A failure runs the rest of Airflow's handling unchanged (retry choice,
callback request), with the event's XComs set aside; they are pushed only when the task did not go
up for retry (Airflow's rule). A success does what Airflow's handler does for it (clear the
trigger, set the state, push the XComs) without building a success callback request, which nothing
runs (``skip_success_callback_requests`` in ``erp_agents.stack.triggerer`` says why) and which cost
a query for the DAG model and a log line of the whole request per task. The upstream changes it
stands in for: ``task_instance.xcom_push(key=key, value=value, session=session)`` in
``handle_event_submit``, and no callback request for a task without such a callback. Applied only to the Airflow versions it was checked
against; the source it relies on is pinned (``PINNED_EVENT_SOURCES``, tests/unit/stack/test_event_xcoms.py).
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

# The session.info key under which ``event_batch`` keeps the XComs pushed during a batch of task
# ends, so they are written once, with the batch's.
XCOM_BATCH = "erp_agents.xcom_batch"
PATCHED_AIRFLOW = ("3.3.",)
PINNED_EVENT_SOURCES = {
    "handle_event_submit[BaseTaskEndEvent]": "270677bbb4ecb4736a0aa38abd9e50c70af83458f1f4d95932b245278dff92fc",
    "XComModel.set": "e32206c20d11cdf7f38815a4b5e6132f7e56ba04bdc17ceba0a5bbb5f8f84b45",
}


def record_xcoms_with_the_state() -> bool:
    """Wrap Airflow's handler of task-ending events (see the module's docstring); True when applied.

    Call it before anything else wraps that handler: ``end_permanent_failures_here`` calls whatever
    is registered for ``BaseTaskEndEvent`` when it is applied."""
    from airflow import __version__ as airflow_version

    if not airflow_version.startswith(PATCHED_AIRFLOW):
        log.warning("Airflow %s: a task a trigger ends commits each of its XComs on its own", airflow_version)
        return False
    from airflow.models.trigger import handle_event_submit
    from airflow.triggers.base import BaseTaskEndEvent
    from airflow.utils.state import TaskInstanceState

    end_task = handle_event_submit.registry[BaseTaskEndEvent]

    def end_task_with_its_xcoms(event: BaseTaskEndEvent, *, task_instance: Any, session: Any) -> None:
        xcoms, event.xcoms = event.xcoms, None
        try:
            if event.task_instance_state == TaskInstanceState.SUCCESS:
                task_instance.trigger_id = None  # the task does not resume on a worker
                task_instance.set_state(TaskInstanceState.SUCCESS, session=session)
            else:
                end_task(event, task_instance=task_instance, session=session)
        finally:
            event.xcoms = xcoms
        if xcoms and task_instance.state != TaskInstanceState.UP_FOR_RETRY:
            push_xcoms(task_instance, xcoms, session)

    end_task_with_its_xcoms.pushes_in_the_callers_session = True  # type: ignore[attr-defined]
    handle_event_submit.register(BaseTaskEndEvent, end_task_with_its_xcoms)
    return True


def push_xcoms(task_instance: Any, xcoms: dict[str, Any], session: Any) -> None:
    """Store a task's XComs now, or with the batch's when ``event_batch`` records several task ends in
    this session (it writes them when its batch is complete)."""
    queued = session.info.get(XCOM_BATCH)
    if queued is not None:
        queued.append((task_instance, xcoms))
    else:
        write_xcoms([(task_instance, xcoms)], session)


def write_xcoms(pushes: list[tuple[Any, dict[str, Any]]], session: Any) -> None:
    """Store the XComs of one or many tasks in three statements where ``XComModel.set`` takes three
    for each: the runs' ids, one delete of the keys' old rows, one insert of the new ones; each value
    serialized by ``XComModel.serialize_value``, as ``set`` does. An agent's answer and cost record
    were six statements of the ~11 that record its end, in the supervisor's one loop that also claims
    new triggers. What ``set`` does is pinned (``PINNED_EVENT_SOURCES["XComModel.set"]``)."""
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from sqlalchemy import delete, select, tuple_

    runs = {(ti.dag_id, ti.run_id) for ti, _ in pushes}
    run_ids = {(dag_id, run_id): id_ for dag_id, run_id, id_ in session.execute(
        select(DagRun.dag_id, DagRun.run_id, DagRun.id).where(tuple_(DagRun.dag_id, DagRun.run_id).in_(list(runs))))}
    if missing := sorted(runs - run_ids.keys()):
        dag_id, run_id = missing[0]
        raise ValueError(f"DAG run not found on DAG {dag_id!r} with ID {run_id!r}")
    rows = [(ti, key, value) for ti, xcoms in pushes for key, value in xcoms.items()]
    session.execute(delete(XComModel).where(
        tuple_(XComModel.dag_id, XComModel.run_id, XComModel.task_id, XComModel.map_index, XComModel.key).in_(
            [(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, key) for ti, key, _ in rows])))
    session.add_all([
        XComModel(dag_run_id=run_ids[(ti.dag_id, ti.run_id)], key=key, dag_result=False,
                  value=XComModel.serialize_value(value=value, key=key, run_id=ti.run_id, task_id=ti.task_id,
                                                  dag_id=ti.dag_id, map_index=ti.map_index),
                  run_id=ti.run_id, task_id=ti.task_id, dag_id=ti.dag_id, map_index=ti.map_index)
        for ti, key, value in rows
    ])
    session.flush()
