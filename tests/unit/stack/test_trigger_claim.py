"""Triggerers claim their fair share of a burst: the arithmetic, the counts on a real (SQLite) metadata
schema, and the Airflow sources the claim relies on."""

from __future__ import annotations

import hashlib
import inspect
from datetime import timedelta

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from airflow import __version__ as airflow_version
from airflow.jobs.job import Job
from airflow.models.trigger import Trigger
from airflow._shared.timezones import timezone

from erp_agents.stack import trigger_claim
from erp_agents.stack.trigger_claim import fair_share


@pytest.mark.parametrize(
    ("live", "unclaimed", "claimed", "mine", "cap", "expected"),
    [
        (2, 500, 0, 0, 500, 250),  # the first of two triggerers to look takes half a burst
        (2, 250, 250, 0, 500, 250),  # the second takes the rest
        (2, 4, 0, 0, 500, 2),  # a small burst is shared too
        (2, 2, 2, 2, 500, 1),  # the second lags: at least one per turn, so nothing waits on it
        (2, 500, 800, 400, 500, 250),  # running load counts: (500 + 800) / 2 - 400
        (1, 500, 0, 0, 200, 200),  # never over the configured cap
        (0, 3, 0, 0, 500, 3),  # no live triggerer yet (this one has not heartbeat): all of it
    ],
)
def test_each_triggerer_claims_its_share_of_all_live_work(live, unclaimed, claimed, mine, cap, expected):
    assert fair_share(live_triggerers=live, unclaimed=unclaimed, claimed_by_live=claimed, mine=mine, cap=cap) == expected


@pytest.fixture
def session():
    engine = create_engine("sqlite://")
    Job.metadata.create_all(engine, tables=[Job.__table__, Trigger.__table__])
    with Session(engine) as session:
        yield session


def _job(session: Session, *, alive: bool) -> int:
    now = timezone.utcnow()
    job = Job(job_type="TriggererJob")
    job.start_date = now - timedelta(minutes=5)
    job.latest_heartbeat = now if alive else now - timedelta(minutes=5)
    job.end_date = None
    session.add(job)
    session.flush()
    return int(job.id)


def _triggers(session: Session, count: int, triggerer_id: int | None, queue: str | None = None) -> None:
    for _ in range(count):
        trigger = Trigger(classpath="erp_agents.triggers.agent.AgentTrigger", kwargs={}, queue=queue)
        trigger.triggerer_id = triggerer_id
        session.add(trigger)
    session.flush()


def test_counts_read_live_triggerers_and_their_triggers_in_the_served_queues(session):
    me, other, dead = _job(session, alive=True), _job(session, alive=True), _job(session, alive=False)
    _triggers(session, 3, me)
    _triggers(session, 5, other)
    _triggers(session, 7, dead)  # a dead triggerer's triggers wait to be claimed again
    _triggers(session, 11, None)
    _triggers(session, 13, None, queue="gpu")  # another queue's triggerers take these

    counts = trigger_claim._counts(me, 30, None, session)
    assert counts == {"live_triggerers": 2, "unclaimed": 18, "claimed_by_live": 8, "mine": 3}
    assert trigger_claim._counts(me, 30, {"gpu"}, session)["unclaimed"] == 13


def test_the_claim_sets_the_turns_number_and_restores_the_configured_cap(monkeypatch, session):
    original = inspect.getattr_static(Trigger, "assign_unassigned")
    seen: list[int] = []

    def fake_assign(cls, triggerer_id, capacity, threshold, queues=None, team_name=None, *, session=None):
        seen.append(cls.max_trigger_to_select_per_loop)

    monkeypatch.setattr(Trigger, "assign_unassigned", classmethod(fake_assign))
    monkeypatch.setattr(Trigger, "max_trigger_to_select_per_loop", 500)
    try:
        assert trigger_claim.claim_fair_share() is True
        me, _ = _job(session, alive=True), _job(session, alive=True)
        _triggers(session, 9, None)
        Trigger.assign_unassigned(me, 1000, 30, session=session)
        assert seen == [5]  # ceil(9 / 2)
        assert Trigger.max_trigger_to_select_per_loop == 500
    finally:
        Trigger.assign_unassigned = original


def test_the_claim_stands_in_for_the_airflow_methods_it_was_written_against():
    assert airflow_version.startswith(trigger_claim.PATCHED_AIRFLOW)
    found = {
        f"Trigger.{name}": hashlib.sha256(
            inspect.getsource(inspect.getattr_static(Trigger, name).__func__).encode()).hexdigest()
        for name in ("assign_unassigned", "get_sorted_triggers")
    }
    changed = sorted(name for name, digest in found.items() if trigger_claim.PINNED_CLAIM_SOURCES[name] != digest)
    assert not changed, (f"Airflow changed {changed}: check that get_sorted_triggers still reads "
                         "max_trigger_to_select_per_loop per turn, then update PINNED_CLAIM_SOURCES")
