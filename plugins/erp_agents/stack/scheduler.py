"""The scheduler's entry point: Airflow's ``scheduler`` command, started after what it imports is
frozen out of the garbage collector's reach (``stack.collector``: its full collections had taken 4 s
of CPU over a deployment's start and two 500-agent benchmark shapes).

It also defers a loop's agents with one flush (``stack.scheduler_defer``: one flush per task had
been most of ``schedule_tis``). Used by the embedded deployment, the local cluster and
``docker-compose.yaml``, as the triggerer's entry point is: ``python -m erp_agents.stack.scheduler``
takes the same arguments as ``airflow scheduler``.
"""

from __future__ import annotations

import sys

from erp_agents.stack.collector import freeze_what_is_loaded
from erp_agents.stack.scheduler_defer import defer_in_bulk


def main(argv: list[str] | None = None) -> None:
    from airflow.__main__ import main as airflow_main

    import airflow.jobs.scheduler_job_runner  # noqa: F401 - the scheduler's own modules, frozen with the rest

    defer_in_bulk()
    freeze_what_is_loaded()
    sys.argv = ["airflow", "scheduler", *(sys.argv[1:] if argv is None else argv)]
    airflow_main()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    main()
