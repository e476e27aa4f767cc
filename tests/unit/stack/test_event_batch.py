"""Which events a triggerer records together, when the patch applies, and the Airflow sources it
stands in for (the SQL is tested on a migrated database: tests/integration/test_event_batch_writes.py)."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Iterator

import pytest
from airflow.jobs.triggerer_job_runner import TriggerEventEntry, TriggerRunnerSupervisor
from airflow.models.trigger import Trigger, handle_event_submit
from airflow.triggers.base import BaseTaskEndEvent, TaskFailedEvent, TaskSuccessEvent, TriggerEvent

from erp_agents.stack import event_batch, event_xcoms


def entry(trigger_id: int, event: object) -> TriggerEventEntry:
    return TriggerEventEntry(trigger_id=trigger_id, event=event, persist_seq=None)  # type: ignore[arg-type]


def test_only_successes_of_triggers_that_fired_once_go_together():
    ok1, ok2 = entry(1, TaskSuccessEvent()), entry(2, TaskSuccessEvent(xcoms={"return_value": 1}))
    failed = entry(3, TaskFailedEvent())  # Airflow decides retries and callbacks for it
    resumes = entry(4, TriggerEvent({"done": True}))  # the task resumes on a worker
    twice = [entry(5, TaskSuccessEvent()), entry(5, TaskSuccessEvent())]
    assert event_batch.batchable([ok1, failed, twice[0], resumes, ok2, twice[1]]) == [ok1, ok2]


@pytest.fixture
def airflows_handlers() -> Iterator[None]:
    handler, handle_events = handle_event_submit.registry[BaseTaskEndEvent], TriggerRunnerSupervisor.handle_events
    try:
        yield
    finally:
        handle_event_submit.register(BaseTaskEndEvent, handler)
        TriggerRunnerSupervisor.handle_events = handle_events  # type: ignore[method-assign]


def test_it_applies_only_over_the_handler_that_pushes_xcoms_in_the_callers_session(airflows_handlers):
    airflows = TriggerRunnerSupervisor.handle_events
    assert event_batch.record_task_ends_together() is False  # each XCom would commit on its own
    assert TriggerRunnerSupervisor.handle_events is airflows
    assert event_xcoms.record_xcoms_with_the_state() is True
    assert event_batch.record_task_ends_together() is True
    assert TriggerRunnerSupervisor.handle_events is not airflows


@pytest.mark.parametrize(("name", "source"), [
    ("TriggerRunnerSupervisor.handle_events", TriggerRunnerSupervisor.handle_events),
    ("Trigger.submit_event", Trigger.submit_event),
])
def test_it_stands_in_for_the_airflow_sources_it_was_written_against(name, source, airflows_handlers):
    found = hashlib.sha256(inspect.getsource(source).encode()).hexdigest()
    assert found == event_batch.PINNED_BATCH_SOURCES[name], (
        f"Airflow changed {name}: check that record_successes still does for a task success what "
        "submit_event does (and that handle_events still confirms and counts each event), then update "
        "PINNED_BATCH_SOURCES")
