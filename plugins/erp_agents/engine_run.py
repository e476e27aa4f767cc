"""One workflow run in its own process: ``python -m erp_agents.engine_run REQUEST.json RESULT.json``.

``dag.test()`` installs signal handlers and keeps process-wide task-runner state, so it must run on
the main thread of a process of its own; this also lets several runs proceed side by side. The
request carries the workflow and engine config as JSON (validated again here); the result file gets
the run id, which the engine uses to read the run's outcome from the metadata DB.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from erp_agents.spec.models import EngineConfig, Workflow

if TYPE_CHECKING:
    from airflow.sdk import DAG


def dag_of(workflow: Workflow, engine: EngineConfig, source: str) -> DAG:
    """The workflow's DAG as the engine records and runs it: its code is ``source``'s (the UI shows it)."""
    from erp_agents.factory.render import build_dag

    dag = build_dag(workflow, engine, source=source)
    dag.fileloc = source
    dag.relative_fileloc = Path(source).name
    return dag


def run_request(request: dict[str, Any]) -> str:
    """Build the DAG from the request and run it once; returns the run id."""
    workflow = Workflow.model_validate(request["workflow"])
    dag = dag_of(workflow, EngineConfig.model_validate(request["engine"]), request["source"])
    logical_date = datetime.fromisoformat(request["logical_date"]) if request.get("logical_date") else None
    run = dag.test(logical_date=logical_date, run_conf=request.get("params") or None)
    run_id: str = run.run_id
    return run_id


def main(argv: list[str]) -> int:
    request_file, result_file = argv
    run_id = run_request(json.loads(Path(request_file).read_text()))
    Path(result_file).write_text(json.dumps({"run_id": run_id}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
