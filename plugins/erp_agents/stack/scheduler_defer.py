"""The scheduler defers a loop's start-from-trigger tasks with one flush, not one flush per task.

Airflow 3.3's ``TaskInstance.defer_task``, which ``DagRun.schedule_tis`` calls for every task that
starts in the triggerer (every agent), adds the task's ``Trigger`` row and flushes the session at once
to learn the row's id. Each flush also writes the previous task's changes, so deferring 500 agents
took 500 flushes, 1,000 single-row statements and the unit of work's bookkeeping each time, in the
loop whose commit is what lets the triggerers see any of them: py-spy put 74% of ``schedule_tis``
there during shape (a) of bench/scale.py.

Here the task points at its new trigger through the mapped relationship (``TaskInstance.trigger``)
instead of copying its id, so SQLAlchemy writes the triggers and the task instances at the session's
next flush, before the loop's commit: the same rows in the same transaction, and the task ids filled
in from the new rows. On PostgreSQL the triggers go in one ``INSERT ... RETURNING``; on SQLite, which
has no sentinel column for it, one by one, still in the one flush.
Nothing between the deferral and that flush reads ``trigger_id``: ``schedule_tis``'s own next
statement flushes first.

The upstream change it stands in for: let ``defer_task`` leave the flush to its caller (or
``schedule_tis`` defer in bulk). Applied only to the Airflow versions it was checked against; the
sources it relies on are pinned in ``PINNED_DEFER_SOURCES`` (tests/unit/stack/test_scheduler_entry.py
fails when one changes; tests/integration/test_scheduler_defer_writes.py compares the rows written
with Airflow's own).
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

PATCHED_AIRFLOW = ("3.3.",)
PINNED_DEFER_SOURCES = {
    "TaskInstance.defer_task": "115dc0d8e8b35a5cc750cbe3b138403e9a97ad64dc1bff7df5b65c8d77591b36",
    "DagRun.schedule_tis": "3d00c0332cee5c87c14e20a59a51409df0e8b5906050ac5fa9b3d009eff5cd33",
}


def defer_task_in_bulk(self: Any, *, session: Any) -> bool:
    """``TaskInstance.defer_task`` as Airflow 3.3 writes it, with the trigger linked, not flushed."""
    from airflow._shared.timezones import timezone
    from airflow.configuration import conf
    from airflow.models.taskinstance import _add_log
    from airflow.models.trigger import Trigger
    from airflow.serialization.enums import stringify_encoding_keys
    from airflow.utils.state import TaskInstanceState

    if start_trigger_args := self.start_trigger_args:
        trigger_kwargs = start_trigger_args.trigger_kwargs or {}
        timeout = start_trigger_args.timeout
        self.trigger_timeout = timezone.utcnow() + timeout if timeout is not None else None

        team_name: str | None = None
        if conf.getboolean("core", "multi_team"):
            from airflow.models.dag import DagModel

            team_name = DagModel.get_team_name(self.dag_id, session=session)

        trigger_row = Trigger(classpath=start_trigger_args.trigger_cls, kwargs=trigger_kwargs, team_name=team_name)
        session.add(trigger_row)
        self.trigger = trigger_row  # trigger_id is filled in when the session next flushes

        pre_deferral_state = self.state
        self.state = TaskInstanceState.DEFERRED
        self.next_method = start_trigger_args.next_method
        self.next_kwargs = stringify_encoding_keys(start_trigger_args.next_kwargs or {})
        self.start_date = timezone.utcnow()

        if execution_timeout := self.task.execution_timeout:
            if self.trigger_timeout:
                self.trigger_timeout = min(self.start_date + execution_timeout, self.trigger_timeout)
            else:
                self.trigger_timeout = self.start_date + execution_timeout
        if pre_deferral_state != TaskInstanceState.UP_FOR_RESCHEDULE:
            self.try_number += 1
        if self.test_mode:
            _add_log(event=self.state, task_instance=self, session=session)
        return True
    return False


def defer_in_bulk() -> bool:
    """Replace ``TaskInstance.defer_task`` on the Airflow versions this was checked against; True when
    applied."""
    from airflow import __version__ as airflow_version

    if not airflow_version.startswith(PATCHED_AIRFLOW):
        log.warning("Airflow %s: the scheduler flushes each deferred task's trigger on its own, as Airflow does it",
                    airflow_version)
        return False
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import provide_session

    TaskInstance.defer_task = provide_session(defer_task_in_bulk)  # type: ignore[method-assign,arg-type]
    return True
