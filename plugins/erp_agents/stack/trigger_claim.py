"""Triggerers claim their fair share of waiting triggers in one loop turn.

Airflow 3.3's triggerer claims at most ``[triggerer] max_trigger_to_select_per_loop`` new triggers
per loop turn (0.2-1 s), a fixed number chosen so that one triggerer does not take what another
could run. Both settings lose: a small number (Airflow's 50; 10 kept a small burst shared on our
cluster) spreads the start of 500 agents over 10-50 turns, and a large one (250) let one triggerer
claim a whole small burst, so a dependency level of erp_nightly ran on one triggerer of two.

Here each turn claims ``ceil(live triggers / live triggerers) - mine``, at least 1 and at most the
configured number: the first triggerer to look at 500 new triggers takes 250, the second the other
250, and a burst of 4 goes 2 and 2. Which triggers a turn takes, the row locks and the capacity
check are Airflow's own (``assign_unassigned``); only the per-turn number changes, so a triggerer
that dies or lags leaves its share to the others within a few turns (at least one per turn).

The upstream change it stands in for: size the per-turn claim by the live triggerers' load instead
of a fixed number. Applied only to the Airflow versions it was checked against; the source it relies
on is pinned in ``PINNED_CLAIM_SOURCES`` (tests/unit/stack/test_trigger_claim.py fails when it changes).
"""

from __future__ import annotations

import datetime
import logging
import math
from typing import Any

log = logging.getLogger(__name__)

PATCHED_AIRFLOW = ("3.3.",)
PINNED_CLAIM_SOURCES = {
    "Trigger.assign_unassigned": "f4e0a55b2364129363645cd16a7dedbe6a49afb9650e45a0887bb593fa3912c9",
    "Trigger.get_sorted_triggers": "567ac273490988925177651b9e0b09d19331c7e0f11badedbdf0b3b51ee85fc6",
}


def fair_share(*, live_triggerers: int, unclaimed: int, claimed_by_live: int, mine: int, cap: int) -> int:
    """How many new triggers one triggerer claims this turn: its share of all live work, less what it
    runs already; at least 1 (progress when another triggerer lags), at most ``cap``."""
    share = math.ceil((unclaimed + claimed_by_live) / max(live_triggerers, 1)) - mine
    return max(1, min(cap, share))


def _counts(triggerer_id: int, health_check_threshold: float, queues: set[str] | None, session: Any) -> dict[str, int]:
    """Live triggerers, and triggers unclaimed / claimed by a live triggerer / claimed by this one,
    in the queues this triggerer serves (Airflow's own filter: its queues, or no queue)."""
    from sqlalchemy import case, func, or_, select

    from airflow.jobs.job import Job
    from airflow.models.trigger import Trigger
    from airflow._shared.timezones import timezone

    alive = select(Job.id).where(
        Job.end_date.is_(None),
        Job.latest_heartbeat > timezone.utcnow() - datetime.timedelta(seconds=health_check_threshold),
        Job.job_type == "TriggererJob",
    )
    live_triggerers = int(session.scalar(select(func.count()).select_from(alive.subquery())) or 0)
    in_queues = Trigger.queue.in_(queues) if queues else Trigger.queue.is_(None)
    is_live = Trigger.triggerer_id.in_(alive)
    row = session.execute(
        select(
            func.count(case((or_(Trigger.triggerer_id.is_(None), ~is_live), 1))),
            func.count(case((is_live, 1))),
            func.count(case((Trigger.triggerer_id == triggerer_id, 1))),
        ).where(in_queues)
    ).one()
    return {"live_triggerers": live_triggerers, "unclaimed": int(row[0]), "claimed_by_live": int(row[1]),
            "mine": int(row[2])}


def claim_fair_share() -> bool:
    """Size each triggerer's per-turn claim by the live triggerers' load; True when applied."""
    from airflow import __version__ as airflow_version

    if not airflow_version.startswith(PATCHED_AIRFLOW):
        log.warning("Airflow %s: triggerers claim a fixed number of triggers per turn, as Airflow does it",
                    airflow_version)
        return False
    from airflow.models.trigger import Trigger
    from airflow.utils.session import NEW_SESSION, provide_session

    assign = Trigger.assign_unassigned.__func__  # type: ignore[attr-defined]
    cap = Trigger.max_trigger_to_select_per_loop

    @provide_session
    def assign_fair_share(cls: type[Trigger], triggerer_id: int, capacity: int, health_check_threshold: float,
                          queues: set[str] | None = None, team_name: str | None = None, *,
                          session: Any = NEW_SESSION) -> None:
        counts = _counts(triggerer_id, health_check_threshold, queues, session)
        # get_sorted_triggers reads this class attribute for the turn; one thread runs the claims.
        cls.max_trigger_to_select_per_loop = fair_share(cap=cap, **counts)
        try:
            assign(cls, triggerer_id, capacity, health_check_threshold, queues=queues, team_name=team_name,
                   session=session)
        finally:
            cls.max_trigger_to_select_per_loop = cap

    Trigger.assign_unassigned = classmethod(assign_fair_share)  # type: ignore[assignment,method-assign]
    return True
