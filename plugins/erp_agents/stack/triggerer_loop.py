"""The triggerer's main loop claims and cleans triggers at a steady pace, not on every log line.

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
new. The upstream change it stands in for: pace the claim and clean-up by time, not by runner
activity. Applied only to the Airflow versions it was checked against; the sources it relies on are
pinned in ``PINNED_LOOP_SOURCES`` (tests/unit/stack/test_triggerer_loop.py fails when one changes).
"""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger(__name__)

PATCHED_AIRFLOW = ("3.3.",)
CLAIM_EVERY_S = 0.5
PINNED_LOOP_SOURCES = {
    "TriggerRunnerSupervisor.run_once": "11a9e2701a6b116af2ba983b783b7bfcbdd7beaf724be20c8554dd21cd86d96b",
    "TriggerRunnerSupervisor.load_triggers": "1c55ebd398f7172014b30c5ad681d23a2e71d777854640ec67fb15e538c8d974",
    "TriggerRunnerSupervisor.update_triggers": "fadb502c2a646f3933f5390129e84c9bc27b24d2e69c3852c92e1b0645964158",
    "Trigger.clean_unused": "16671a39f967f14c6a1456b15bf55779fb156ea282533e67f71a7f710cbee30f",
    "Trigger.ids_for_triggerer": "196d158628bf263776292b911d6e0c78fd7cfc0a32198b4a0e953decf7d7961d",
}


# When each supervisor (one per triggerer process; its class has slots) next claims, by id().
_next_claim: dict[int, float] = {}


def paced_run_once(self: Any) -> None:
    """One turn of the supervisor's loop; Airflow's steps, with the claim and clean-up paced."""
    if time.monotonic() >= _next_claim.get(id(self), 0.0):
        self.clean_unused()  # first: a trigger whose event was recorded must not be claimed again
        self.load_triggers()
        _next_claim[id(self)] = time.monotonic() + CLAIM_EVERY_S
    self._service_subprocess(min(1.0, max(0.0, _next_claim[id(self)] - time.monotonic())))
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
