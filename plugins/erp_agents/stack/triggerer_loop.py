"""The triggerer's two loops: the supervisor claims and cleans triggers at a steady pace, not on every
log line, and the trigger runner hands events over and takes new triggers every ``SYNC_EVERY_S``.

Airflow 3.3's ``TriggerRunnerSupervisor.run_once`` claims triggers (``load_triggers``), waits up to
1 s for the trigger runner, records events, and deletes finished triggers (``clean_unused``). The
wait ends as soon as the runner writes anything, and while hundreds of agents run it writes all the
time (each agent logs about six lines), so the loop turned many times a second and ran both database
passes on every turn: measured with py-spy on a 500-agent run, they took 8 of the supervisor's 17 s
of CPU, as much as the agents' own code in the runner, on a 2-core machine that both share.

Here the claim and the clean-up run together at most every ``CLAIM_EVERY_S`` (Airflow's pace when the
runner is quiet is once a second); between them the loop still reads the runner and records every
event as it arrives. The clean-up runs just before the claim, as Airflow's order guarantees: a trigger
whose event was recorded is deleted before ``ids_for_triggerer`` could hand it back to the runner as
new. Between paced claims the loop asks every ``PROBE_EVERY_S``, in one small query, whether a trigger
newer than any its last claim saw waits unclaimed, and claims at once when one does: a task the
scheduler just deferred (a fan-out's chunks, a workflow's next layer) starts within 0.1 s instead of
waiting up to ``CLAIM_EVERY_S``, while a turn with nothing new costs that one query, and triggers
left unclaimed on purpose (another triggerer's share, a full triggerer) wake nothing. The upstream
change it stands in for: pace the claim and clean-up by time, not by runner activity, and claim as
soon as work arrives. Applied only to the Airflow versions it was checked against; the sources it
relies on are pinned in ``PINNED_LOOP_SOURCES`` (tests/unit/stack/test_triggerer_loop.py fails when
one changes).

The trigger runner (``TriggerRunner.arun``) talks to the supervisor once a turn: it sends the events
its triggers fired and receives the triggers the supervisor claimed for it. Between turns Airflow
sleeps 1 s, so an agent that finished waited up to 1 s before its task could end, and a claimed
agent up to 1 s before it started: with 5 s calls, up to 2 s of a run that could take 5. Here the
runner turns every ``SYNC_EVERY_S``; a turn with nothing to hand over is one small message each way.
The upstream change it stands in for: a configurable (or event-driven) sync interval for the runner.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import suppress
from typing import Any

from erp_agents.stack import supervisor_db
from erp_agents.stack.runner_logs import mark_logs_end

log = logging.getLogger(__name__)

PATCHED_AIRFLOW = ("3.3.",)
CLAIM_EVERY_S = 0.5
PROBE_EVERY_S = 0.1
SYNC_EVERY_S = 0.1
PINNED_LOOP_SOURCES = {
    "TriggerRunnerSupervisor.run_once": "11a9e2701a6b116af2ba983b783b7bfcbdd7beaf724be20c8554dd21cd86d96b",
    "TriggerRunnerSupervisor.load_triggers": "1c55ebd398f7172014b30c5ad681d23a2e71d777854640ec67fb15e538c8d974",
    "TriggerRunnerSupervisor.update_triggers": "fadb502c2a646f3933f5390129e84c9bc27b24d2e69c3852c92e1b0645964158",
    "Trigger.clean_unused": "16671a39f967f14c6a1456b15bf55779fb156ea282533e67f71a7f710cbee30f",
    "Trigger.ids_for_triggerer": "196d158628bf263776292b911d6e0c78fd7cfc0a32198b4a0e953decf7d7961d",
    "TriggerRunner.arun": "2970ea57bd8c68591d9fac34e0e9b7055ec6ceefbf11682cc362a74822824bc5",
}


# Per supervisor (one per triggerer process; its class has slots), by id(): when it next claims, when
# it next probes, and the newest unclaimed trigger id its last claim saw.
_next_claim: dict[int, float] = {}
_next_probe: dict[int, float] = {}
_claimed_through: dict[int, int] = {}


def newest_unclaimed_trigger(queues: set[str] | None, connection: Any = None) -> int:
    """The newest trigger id no triggerer holds, in the queues this triggerer serves (0 if none):
    trigger ids only grow, so a larger answer than last time means new work arrived. Read on the
    supervisor's own connection (``supervisor_db``) unless given one."""
    from sqlalchemy import func, select

    from airflow.models.trigger import Trigger

    in_queues = Trigger.queue.in_(queues) if queues else Trigger.queue.is_(None)
    query = select(func.max(Trigger.id)).where(Trigger.triggerer_id.is_(None), in_queues)
    if connection is not None:
        return int(connection.scalar(query) or 0)
    return int(supervisor_db.read(lambda own: own.scalar(query)) or 0)


_probe_failing: set[int] = set()  # process ids whose last probe failed: one warning per outage, not ten a second


def _probe_safely(queues: set[str] | None) -> int:
    """The probe, or 0 (no news: the paced claim still runs, and reports the database as Airflow
    does) when the database cannot answer."""
    import os

    from sqlalchemy.exc import SQLAlchemyError

    try:
        newest = newest_unclaimed_trigger(queues)
    except SQLAlchemyError as exc:
        if os.getpid() not in _probe_failing:
            _probe_failing.add(os.getpid())
            log.warning("The triggerer's probe for new triggers failed (%s); claiming at the paced interval", exc)
        return 0
    if os.getpid() in _probe_failing:
        _probe_failing.discard(os.getpid())
        log.info("The triggerer's probe for new triggers answers again")
    return newest


def _new_trigger_waits(self: Any, now: float) -> int | None:
    """At most every PROBE_EVERY_S: the newest unclaimed trigger id when it is newer than the last
    claim saw, else None."""
    key = id(self)
    if now < _next_probe.get(key, 0.0):
        return None
    _next_probe[key] = now + PROBE_EVERY_S
    newest = _probe_safely(self.queues)
    return newest if newest > _claimed_through.get(key, 0) else None


def _claim(self: Any, newest: int | None) -> None:
    key = id(self)
    seen = _probe_safely(self.queues) if newest is None else newest
    self.clean_unused()  # first: a trigger whose event was recorded must not be claimed again
    self.load_triggers()
    _claimed_through[key] = max(_claimed_through.get(key, 0), seen)
    now = time.monotonic()
    _next_claim[key] = now + CLAIM_EVERY_S
    _next_probe[key] = now + PROBE_EVERY_S


def paced_run_once(self: Any) -> None:
    """One turn of the supervisor's loop; Airflow's steps, with the claim and clean-up paced, and a
    claim at once when new triggers arrive."""
    key, now = id(self), time.monotonic()
    if now >= _next_claim.get(key, 0.0):
        _claim(self, None)
    elif (newest := _new_trigger_waits(self, now)) is not None:
        _claim(self, newest)
    wake = min(_next_claim[key], _next_probe[key])
    self._service_subprocess(min(1.0, max(0.0, wake - time.monotonic())))
    self.handle_events()
    self.handle_failed_triggers()
    self.heartbeat()
    self.emit_metrics()


def pace_claims() -> bool:
    """Replace the supervisor's loop turn on the Airflow versions this was checked against; True when applied."""
    from airflow import __version__ as airflow_version

    if not airflow_version.startswith(PATCHED_AIRFLOW):
        log.warning("Airflow %s: the triggerer claims and cleans triggers on every loop turn, as Airflow does it",
                    airflow_version)
        return False
    from airflow.jobs.triggerer_job_runner import TriggerRunnerSupervisor

    TriggerRunnerSupervisor.run_once = paced_run_once  # type: ignore[method-assign]
    return True


async def often_synced_arun(self: Any) -> None:
    """``TriggerRunner.arun`` as Airflow 3.3 writes it, with the turn's wait at ``SYNC_EVERY_S`` (not 1 s),
    and the marker after finished triggers' last log lines (``runner_logs``)."""
    import anyio
    from airflow.jobs.triggerer_job_runner import log as runner_log

    await self.init_comms()

    watchdog = asyncio.create_task(self.block_watchdog())
    stop_event = self._stop_event = anyio.Event()

    last_status = time.monotonic()
    try:
        while not self.stop:
            if watchdog.done():
                watchdog.result()

            if self.comms_decoder._reader_task.done():
                self.comms_decoder._reader_task.result()
                raise RuntimeError("Supervisor connection lost")

            finished_ids = await self.cleanup_finished_triggers()
            mark_logs_end(finished_ids)  # after their last lines, before the report that they finished
            await self.sync_state_to_supervisor(finished_ids)
            await self.create_triggers()
            await self.cancel_triggers()
            with anyio.move_on_after(SYNC_EVERY_S):
                await stop_event.wait()
            if (now := time.monotonic()) - last_status >= 60:
                watchers = len([trigger for trigger in self.triggers.values() if trigger["is_watcher"]])
                triggers = len(self.triggers) - watchers
                self.log.info("%i triggers currently running", triggers)
                self.log.info("%i watchers currently running", watchers)
                last_status = now

    except Exception:
        with suppress(BrokenPipeError):
            await runner_log.aexception("Trigger runner failed")
        self.stop = True
        raise
    finally:
        if (reader_task := self.comms_decoder._reader_task) is not None:
            reader_task.cancel()
            with suppress(asyncio.CancelledError):
                await reader_task
        await self._shared_streams.stop_all()
    await watchdog


def sync_runner_often() -> bool:
    """Replace the trigger runner's loop on the Airflow versions this was checked against; True when applied."""
    from airflow import __version__ as airflow_version

    if not airflow_version.startswith(PATCHED_AIRFLOW):
        log.warning("Airflow %s: the trigger runner syncs with its supervisor once a second, as Airflow does it",
                    airflow_version)
        return False
    from airflow.jobs.triggerer_job_runner import TriggerRunner

    TriggerRunner.arun = often_synced_arun  # type: ignore[method-assign]
    return True
