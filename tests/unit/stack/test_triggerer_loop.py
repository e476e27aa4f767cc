"""The triggerer's paced loop: claims and clean-ups at most every CLAIM_EVERY_S, clean-up first, every
event recorded on every turn; and the Airflow sources it stands in for."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import time

from airflow import __version__ as airflow_version
from airflow.jobs.triggerer_job_runner import TriggerRunner, TriggerRunnerSupervisor
from airflow.models.trigger import Trigger

from erp_agents.stack import triggerer_loop


class Supervisor:
    """The steps of a turn, recorded in order; the runner answers at once, as a busy one does."""

    queues = None

    def __init__(self) -> None:
        self.steps: list[str] = []
        self.waits: list[float] = []

    def __getattr__(self, name: str):
        if name.startswith("_") and name != "_service_subprocess":
            raise AttributeError(name)
        return lambda *args: self.waits.append(args[0]) if name == "_service_subprocess" else self.steps.append(name)


class Unclaimed:
    """The metadata DB's newest unclaimed trigger id, as the probe reads it; counts the probes."""

    def __init__(self) -> None:
        self.newest, self.probes = 0, 0

    def __call__(self, queues: set[str] | None, connection: object = None) -> int:
        self.probes += 1
        return self.newest


def test_a_busy_runner_turns_the_loop_often_but_the_claim_runs_at_its_pace(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(triggerer_loop.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(triggerer_loop, "newest_unclaimed_trigger", Unclaimed())
    supervisor = Supervisor()
    for _ in range(5):  # five turns within 0.4 s
        triggerer_loop.paced_run_once(supervisor)
        clock[0] += 0.1
    claims = [s for s in supervisor.steps if s in ("clean_unused", "load_triggers")]
    assert claims == ["clean_unused", "load_triggers"]  # once, the clean-up first
    assert supervisor.steps.count("handle_events") == 5  # events are recorded on every turn
    assert supervisor.steps.count("heartbeat") == 5
    assert all(0 <= w <= triggerer_loop.CLAIM_EVERY_S for w in supervisor.waits)
    clock[0] += triggerer_loop.CLAIM_EVERY_S
    triggerer_loop.paced_run_once(supervisor)
    assert supervisor.steps.count("load_triggers") == 2


def test_a_trigger_deferred_between_claims_is_claimed_at_the_next_probe_not_the_next_claim(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(triggerer_loop.time, "monotonic", lambda: clock[0])
    unclaimed = Unclaimed()
    monkeypatch.setattr(triggerer_loop, "newest_unclaimed_trigger", unclaimed)
    supervisor = Supervisor()
    unclaimed.newest = 7  # seven triggers wait when the triggerer starts
    triggerer_loop.paced_run_once(supervisor)
    assert supervisor.steps.count("load_triggers") == 1
    assert max(supervisor.waits) <= triggerer_loop.PROBE_EVERY_S  # the loop wakes for the next probe

    def turn(seconds: float) -> None:
        clock[0] += seconds
        triggerer_loop.paced_run_once(supervisor)

    # Trigger 7 stays unclaimed (another triggerer's share, or this one is full): no early claim for it.
    for _ in range(3):
        turn(triggerer_loop.PROBE_EVERY_S)
    assert supervisor.steps.count("load_triggers") == 1

    # The scheduler defers new tasks: the next probe claims them, well before the paced claim is due.
    unclaimed.newest = 9
    probes = unclaimed.probes
    turn(triggerer_loop.PROBE_EVERY_S / 2)  # between probes: not even a query
    assert unclaimed.probes == probes and supervisor.steps.count("load_triggers") == 1
    turn(triggerer_loop.PROBE_EVERY_S / 2)
    assert supervisor.steps.count("load_triggers") == 2
    assert supervisor.steps[-6:-4] == ["clean_unused", "load_triggers"]  # the clean-up still goes first

    # Claimed: the same newest id wakes nothing more, and the paced claim resumes its own pace.
    turn(triggerer_loop.PROBE_EVERY_S)
    assert supervisor.steps.count("load_triggers") == 2
    turn(triggerer_loop.CLAIM_EVERY_S)
    assert supervisor.steps.count("load_triggers") == 3


def test_the_probe_reads_the_newest_unclaimed_trigger_in_the_served_queues():
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    engine = create_engine("sqlite://")
    Trigger.metadata.create_all(engine, tables=[Trigger.metadata.tables["team"], Trigger.__table__])
    with engine.connect() as probe:
        assert triggerer_loop.newest_unclaimed_trigger(None, probe) == 0
        with Session(probe) as session:
            rows = [Trigger(classpath="erp_agents.triggers.agent.AgentTrigger", kwargs={}, queue=queue)
                    for queue in (None, None, "gpu", None)]
            rows[3].triggerer_id = 42  # claimed: not waiting
            session.add_all(rows)
            session.flush()
            assert triggerer_loop.newest_unclaimed_trigger(None, probe) == rows[1].id
            assert triggerer_loop.newest_unclaimed_trigger({"gpu"}, probe) == rows[2].id


def test_a_probe_the_database_cannot_answer_is_no_news(monkeypatch, caplog):
    from sqlalchemy.exc import OperationalError

    def unreachable(reading: object) -> int:
        raise OperationalError("SELECT max(id)", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(triggerer_loop.supervisor_db, "read", unreachable)
    with caplog.at_level(logging.WARNING, logger=triggerer_loop.__name__):
        assert [triggerer_loop._probe_safely(None) for _ in range(10)] == [0] * 10  # the paced claim still runs
    assert len(caplog.records) == 1  # one warning for the outage, not one per probe
    monkeypatch.setattr(triggerer_loop.supervisor_db, "read", lambda reading: 12)
    assert triggerer_loop._probe_safely(None) == 12
    assert not triggerer_loop._probe_failing


def test_the_loop_stands_in_for_the_airflow_methods_it_was_written_against():
    assert airflow_version.startswith(triggerer_loop.PATCHED_AIRFLOW)
    sources = {
        "TriggerRunnerSupervisor.run_once": TriggerRunnerSupervisor.run_once,
        "TriggerRunnerSupervisor.load_triggers": TriggerRunnerSupervisor.load_triggers,
        "TriggerRunnerSupervisor.update_triggers": TriggerRunnerSupervisor.update_triggers,
        "Trigger.clean_unused": inspect.getattr_static(Trigger, "clean_unused").__func__,
        "Trigger.ids_for_triggerer": inspect.getattr_static(Trigger, "ids_for_triggerer").__func__,
        "TriggerRunner.arun": TriggerRunner.arun,
    }
    found = {name: hashlib.sha256(inspect.getsource(f).encode()).hexdigest() for name, f in sources.items()}
    changed = sorted(name for name, digest in found.items() if triggerer_loop.PINNED_LOOP_SOURCES[name] != digest)
    assert not changed, (f"Airflow changed {changed}: port the change into erp_agents.stack.triggerer_loop "
                         "(the clean-up must still run before a claim), then update PINNED_LOOP_SOURCES")


def test_the_paced_turn_replaces_airflows(monkeypatch):
    monkeypatch.setattr(TriggerRunnerSupervisor, "run_once", TriggerRunnerSupervisor.run_once)
    assert triggerer_loop.pace_claims() is True
    assert TriggerRunnerSupervisor.run_once is triggerer_loop.paced_run_once


class Runner:
    """What ``arun`` calls on the trigger runner; it stops itself after ``turns`` syncs."""

    def __init__(self, turns: int) -> None:
        self.turns, self.syncs, self.stop, self.triggers = turns, 0, False, {}
        self.steps: list[str] = []

    async def init_comms(self) -> None:
        self.comms_decoder = type("Decoder", (), {"_reader_task": asyncio.create_task(asyncio.sleep(60))})()
        self._shared_streams = type("Streams", (), {"stop_all": staticmethod(lambda: asyncio.sleep(0))})()

    async def block_watchdog(self) -> None:
        while not self.stop:
            await asyncio.sleep(0.01)

    async def cleanup_finished_triggers(self) -> list[int]:
        self.steps.append("cleanup")
        return []

    async def sync_state_to_supervisor(self, finished_ids: list[int]) -> None:
        self.steps.append("sync")
        self.syncs += 1
        self.stop = self.syncs >= self.turns

    async def create_triggers(self) -> None:
        self.steps.append("create")

    async def cancel_triggers(self) -> None:
        self.steps.append("cancel")


def test_the_runner_hands_events_over_every_sync_interval_not_every_second():
    runner = Runner(turns=6)
    began = time.monotonic()
    asyncio.run(triggerer_loop.often_synced_arun(runner))
    took = time.monotonic() - began
    assert runner.steps[:4] == ["cleanup", "sync", "create", "cancel"]  # Airflow's order within a turn
    assert runner.syncs == 6
    # Five waits between six turns: 0.5 s at SYNC_EVERY_S; Airflow's 1 s waits would take 5 s.
    assert 5 * triggerer_loop.SYNC_EVERY_S * 0.9 <= took < 2.0


def test_the_often_synced_loop_replaces_airflows(monkeypatch):
    monkeypatch.setattr(TriggerRunner, "arun", TriggerRunner.arun)
    assert triggerer_loop.sync_runner_often() is True
    assert TriggerRunner.arun is triggerer_loop.often_synced_arun
