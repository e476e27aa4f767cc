"""A task a trigger ends: its XComs are pushed in the session that records its state, and only when
Airflow's rules push them; and the Airflow source this stands in for."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Iterator
from typing import Any

import pytest
from airflow.models.trigger import handle_event_submit
from airflow.triggers.base import BaseTaskEndEvent, TaskFailedEvent, TaskSuccessEvent
from airflow.utils.state import TaskInstanceState

from erp_agents.stack import event_xcoms

SESSION = object()  # what submit_event passes; every write must use it


class FakeTaskInstance:
    def __init__(self) -> None:
        self.trigger_id: int | None = 7
        self.state: TaskInstanceState = TaskInstanceState.DEFERRED
        self.pushed: list[tuple[str, Any, object]] = []
        self.states: list[tuple[TaskInstanceState, object]] = []

    def set_state(self, state: TaskInstanceState, *, session: object) -> None:
        self.state = state
        self.states.append((state, session))

    def xcom_push(self, *, key: str, value: Any, session: object = None) -> None:
        self.pushed.append((key, value, session))


class FakeSession:
    def __init__(self) -> None:
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1


@pytest.fixture(autouse=True)
def pushes(monkeypatch) -> None:
    """The XComs' SQL is tested on a real database (tests/integration/test_event_xcom_writes.py)."""
    monkeypatch.setattr(event_xcoms, "push_xcoms", lambda ti, xcoms, session: ti.pushed.extend(
        (key, value, session) for key, value in xcoms.items()))


@pytest.fixture
def airflows_handler() -> Iterator[list[tuple[BaseTaskEndEvent, Any]]]:
    """Airflow's handler replaced by one that records its calls and decides a retry for failures."""
    original = handle_event_submit.registry[BaseTaskEndEvent]
    calls: list[tuple[BaseTaskEndEvent, Any]] = []

    def airflow_like(event: BaseTaskEndEvent, *, task_instance: Any, session: Any) -> None:
        calls.append((event, event.xcoms))
        task_instance.trigger_id = None
        task_instance.state = getattr(task_instance, "airflow_decides", event.task_instance_state)

    handle_event_submit.register(BaseTaskEndEvent, airflow_like)
    try:
        assert event_xcoms.record_xcoms_with_the_state() is True
        yield calls
    finally:
        handle_event_submit.register(BaseTaskEndEvent, original)


def test_a_success_sets_its_state_and_pushes_every_xcom_in_the_callers_session(airflows_handler):
    ti, session = FakeTaskInstance(), FakeSession()
    xcoms = {"return_value": {"output": "ok"}, "cost_record": {"calls": 1}}
    handle_event_submit(TaskSuccessEvent(xcoms=xcoms), task_instance=ti, session=session)
    assert ti.trigger_id is None and ti.states == [(TaskInstanceState.SUCCESS, session)]
    assert ti.pushed == [("return_value", {"output": "ok"}, session), ("cost_record", {"calls": 1}, session)]
    assert airflows_handler == []  # no callback request built for a success


def test_a_failure_keeps_airflows_handling_and_its_rule_for_xcoms(airflows_handler):
    xcoms = {"cost_record": {"error_type": "TransientAgentError"}}
    final, retried = FakeTaskInstance(), FakeTaskInstance()
    retried.airflow_decides = TaskInstanceState.UP_FOR_RETRY  # type: ignore[attr-defined]
    event = TaskFailedEvent(xcoms=xcoms)
    handle_event_submit(event, task_instance=final, session=FakeSession())
    handle_event_submit(TaskFailedEvent(xcoms=xcoms), task_instance=retried, session=FakeSession())
    assert [seen for _, seen in airflows_handler] == [None, None]  # Airflow's handler never pushes them itself
    assert event.xcoms == xcoms  # the event is given back as it came
    assert final.pushed == [("cost_record", xcoms["cost_record"], final.pushed[0][2])]
    assert final.pushed[0][2] is not None
    assert retried.pushed == []  # a task going up for retry gets no XComs, as in Airflow


def test_it_stands_in_for_the_airflow_handler_it_was_written_against():
    found = hashlib.sha256(inspect.getsource(handle_event_submit.registry[BaseTaskEndEvent]).encode()).hexdigest()
    assert found == event_xcoms.PINNED_EVENT_SOURCES["handle_event_submit[BaseTaskEndEvent]"], (
        "Airflow changed how a trigger ends a task: check whether it now pushes the XComs in its session "
        "(drop record_xcoms_with_the_state) or what the success path does, then update PINNED_EVENT_SOURCES")


def test_it_stores_xcoms_as_the_xcom_model_it_was_written_against_does():
    from airflow.models.xcom import XComModel

    found = hashlib.sha256(inspect.getsource(XComModel.set).encode()).hexdigest()
    assert found == event_xcoms.PINNED_EVENT_SOURCES["XComModel.set"], (
        "Airflow changed how an XCom is stored: make push_xcoms store rows as XComModel.set now does, "
        "then update PINNED_EVENT_SOURCES")
