"""The tasks a turn of the triggerer's loop ends with success are recorded in one transaction.

Airflow 3.3's ``TriggerRunnerSupervisor.handle_events`` records each event the trigger runner hands
over with ``Trigger.submit_event``, in a session of its own: the task instances waiting on the
trigger, their new state, their XComs, then the trigger again with its task instance, asset watchers
and callback (each a query of its own), and a commit. About nine round trips and their ORM work per
agent, one after another in the supervisor's single loop: when 250 agents' answers come back within
a second, the last of their tasks ended more than a second after its answer (py-spy and the
``bench/scale.py`` timeline, shape a).

Here the events of one turn that end a task with success (``TaskSuccessEvent``), each from a trigger
that fired once in the turn and has no asset watcher and no callback, are recorded together: their
triggers and task instances are loaded in one query each, each task is ended by Airflow's own handler
(``handle_event_submit``, which ``event_xcoms`` makes push XComs with the caller's session), all
their XComs are written in three statements, and one commit ends the batch. Every other event goes
through Airflow's ``submit_event`` one at a time, in the order it came, exactly as before.

Nothing in the batch acts outside its transaction (its triggers fire no asset listener and have no
callback), so when it fails it is rolled back and each of its events is recorded again, one at a
time, by Airflow's code: the failure costs time, never a double effect. The upstream change it stands
in for: ``submit_event`` for many events in one session. Applied only to the Airflow versions it was
checked against; the sources it relies on are pinned (``PINNED_BATCH_SOURCES``,
tests/unit/stack/test_event_batch.py).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

PATCHED_AIRFLOW = ("3.3.",)
PINNED_BATCH_SOURCES = {
    "TriggerRunnerSupervisor.handle_events": "0efdd12ba4b063451c18a99ecbf79110621bbabd9cac2d00ff49b842e2ca1f4b",
    "Trigger.submit_event": "833b9e32236f985eb4aebc6e5ef514920d3d7327eccc681d6de092e4c96fcd5d",
}


def record_task_ends_together() -> bool:
    """Record a turn's task successes in one transaction (see the module's docstring); True when applied."""
    from airflow import __version__ as airflow_version

    if not airflow_version.startswith(PATCHED_AIRFLOW):
        log.warning("Airflow %s: the triggerer records each event in a transaction of its own", airflow_version)
        return False
    from airflow.jobs.triggerer_job_runner import TriggerRunnerSupervisor
    from airflow.models.trigger import handle_event_submit
    from airflow.triggers.base import BaseTaskEndEvent

    if not getattr(handle_event_submit.registry[BaseTaskEndEvent], "pushes_in_the_callers_session", False):
        # Airflow's own handler commits each XCom in a session of its own: a batch could not roll back
        log.warning("The triggerer records each event in a transaction of its own: apply "
                    "record_xcoms_with_the_state first")
        return False
    one_by_one = TriggerRunnerSupervisor.handle_events

    def handle_events(self: TriggerRunnerSupervisor) -> None:
        if len(self.events) > 1:
            record_successes_first(self)
        one_by_one(self)

    TriggerRunnerSupervisor.handle_events = handle_events  # type: ignore[method-assign]
    return True


def batchable(entries: Sequence[Any]) -> list[Any]:
    """The entries that may be recorded together: task successes from triggers that fired once."""
    from airflow.triggers.base import TaskSuccessEvent

    fired = Counter(entry.trigger_id for entry in entries)
    return [e for e in entries if fired[e.trigger_id] == 1 and type(e.event) is TaskSuccessEvent]


def record_successes_first(supervisor: Any) -> None:
    """Record the batchable events of ``supervisor.events`` together and take them off the queue;
    the rest stay, in their order, for Airflow's one-by-one handling."""
    from airflow._shared.observability.metrics import stats
    from airflow.utils.helpers import prune_dict

    entries = list(supervisor.events)
    chosen = batchable(entries)
    if len(chosen) < 2:
        return
    try:
        recorded = record_successes({entry.trigger_id: entry.event for entry in chosen})
    except Exception:
        log.exception("Recording %d task ends together failed; they are recorded one at a time", len(chosen))
        return
    done = {id(entry) for entry in chosen if entry.trigger_id in recorded}
    supervisor.events.clear()
    supervisor.events.extend(entry for entry in entries if id(entry) not in done)
    for entry in entries:
        if id(entry) in done:
            if entry.persist_seq is not None:
                supervisor.persisted_event_seqs.append(entry.persist_seq)
            stats.incr("triggers.succeeded", tags=prune_dict({"team_name": supervisor.team_name}))


def record_successes(events: dict[int, Any]) -> set[int]:
    """End the tasks waiting on these triggers with their events, in one transaction; returns the
    trigger ids recorded (a trigger with asset watchers or a callback is left to ``submit_event``)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger, handle_event_submit
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select
    from sqlalchemy.orm import noload, selectinload

    with create_session() as session, xcoms_written_together(session):
        triggers = session.scalars(
            select(Trigger).where(Trigger.id.in_(list(events)))
            .options(noload(Trigger.task_instance), selectinload(Trigger.asset_watchers),
                     selectinload(Trigger.callback))
        ).all()
        busy = {trigger.id for trigger in triggers if trigger.asset_watchers or trigger.callback is not None}
        plain = [trigger_id for trigger_id in events if trigger_id not in busy]  # a deleted trigger too, as Airflow
        waiting = session.scalars(
            select(TaskInstance).where(TaskInstance.trigger_id.in_(plain),
                                       TaskInstance.state == TaskInstanceState.DEFERRED)
        ).all()
        for task_instance in waiting:
            handle_event_submit(events[task_instance.trigger_id], task_instance=task_instance, session=session)
    return set(plain)


@contextmanager
def xcoms_written_together(session: Any) -> Iterator[None]:
    """``push_xcoms`` calls inside the block queue their XComs; they are written, all of them in three
    statements, when the block ends without an error."""
    from erp_agents.stack.event_xcoms import XCOM_BATCH, write_xcoms

    queued: list[tuple[Any, dict[str, Any]]] = []
    session.info[XCOM_BATCH] = queued
    try:
        yield
        if queued:
            write_xcoms(queued, session)
    finally:
        session.info.pop(XCOM_BATCH, None)
