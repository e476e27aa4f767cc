"""``airflow triggerer`` with its execution-API client built when it starts, not on first use.

Airflow's triggerer serves what triggers ask of the API (XCom reads, connections not in the
environment) through an in-process copy of the execution API, which it builds, and starts, on the
first such request, in its main loop: 17 to 30 s on a busy 2-core machine, during which no trigger
event is recorded and no new trigger loaded. The first agent that read its upstream agents' outputs
paid all of it, so the first dependency level after a triggerer start took that much longer than
the next. Building the client and sending it one request as the trigger runner starts moves the
cost into start-up, which ``up`` waits for anyway.

This wraps an Airflow internal (``TriggerRunnerSupervisor.start`` and its ``client``), so it applies
only to the Airflow versions it was written against (``PATCHED_AIRFLOW``); on others the triggerer
starts unchanged and a warning says so. The upstream change it stands in for: build the in-process
execution API eagerly when the triggerer starts (Airflow's ``InProcessExecutionAPI`` is lazy).
tests/unit/stack/test_triggerer_patch.py fails when the internals it relies on change.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

log = logging.getLogger(__name__)

PATCHED_AIRFLOW = ("3.3.",)


def build_client_at_start() -> bool:
    """Wrap the supervisor's start on the Airflow versions this was checked against; True when applied."""
    from airflow import __version__ as airflow_version
    from airflow.jobs.triggerer_job_runner import TriggerRunnerSupervisor

    if not airflow_version.startswith(PATCHED_AIRFLOW):
        log.warning("Airflow %s: the triggerer's execution API is built on first use, as Airflow does it", airflow_version)
        return False

    start = TriggerRunnerSupervisor.start.__func__  # type: ignore[attr-defined]

    def start_with_client(cls: type[TriggerRunnerSupervisor], /, **kwargs: Any) -> TriggerRunnerSupervisor:
        supervisor: TriggerRunnerSupervisor = start(cls, **kwargs)
        try:  # the first request starts the app (lifespan, routes): 12 s of the 28 a first XCom read took
            supervisor.client.get("health/ping")
        except Exception:  # a failed warm-up only leaves the cost where Airflow puts it
            log.warning("could not warm the triggerer's execution API client", exc_info=True)
        return supervisor

    TriggerRunnerSupervisor.start = classmethod(start_with_client)  # type: ignore[assignment,method-assign]
    return True


def main(argv: list[str] | None = None) -> None:
    build_client_at_start()
    from airflow.__main__ import main as airflow_main

    sys.argv = ["airflow", "triggerer", *(sys.argv[1:] if argv is None else argv)]
    airflow_main()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    main()
