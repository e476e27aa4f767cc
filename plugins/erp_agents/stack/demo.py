"""``make demo``: erp_nightly on the embedded deployment against the LLM simulator, then the report.

Starts the deployment (or attaches), with the simulator's connection in the components'
environment (AIRFLOW_CONN_OPENAI_DEFAULT, never the DB), triggers one run under the real
scheduler and triggerer, prints the per-agent table, the peak number of calls in flight read
from the simulator's JSONL log, and the wall time; stops what it started unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timezone
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from erp_agents.stack.deployment import Deployment

DEMO_KEY = "sim-demo-key"


def admitted(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The calls the simulator served: its log also has one line for each request it refused at the
    door (a 401, 400 or rate-limit 429, answered at once, ``admitted`` false)."""
    return [e for e in entries if e.get("admitted", True)]


def peak_in_flight(entries: Iterable[dict[str, Any]]) -> int:
    """Most served calls the server held at one instant, from each entry's ts_start/ts_end."""
    events = []
    for entry in admitted(entries):
        if entry.get("ts_start") is not None and entry.get("ts_end") is not None:
            events += [(float(entry["ts_start"]), 1), (float(entry["ts_end"]), -1)]
    peak = current = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):  # an end before a start at the same instant
        current += step
        peak = max(peak, current)
    return peak


def read_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def run_demo(deployment: Deployment, sim_url: str, sim_log: Path, dag_id: str, keep: bool) -> int:
    from erp_agents.monitoring.report import format_report
    from erp_agents.stack.rest import AirflowApi
    from erp_agents.xcom import run_summary_from_xcom

    started = time.monotonic()
    conn = {"AIRFLOW_CONN_OPENAI_DEFAULT": json.dumps({"conn_type": "openai", "password": DEMO_KEY, "host": sim_url})}
    # Cron schedules off: unpausing erp_nightly would otherwise also start its latest scheduled run,
    # doubling the calls the simulator sees (a deployment the demo attaches to keeps its setting).
    state, attached = deployment.up(extra_env={**conn, "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"})
    if attached:
        deployment.ensure_triggerer_env(conn)
    print(f"==> Airflow at {state.api_url} ({'attached' if attached else 'started'} after {time.monotonic() - started:.0f} s)")
    api = AirflowApi(state.api_url, *deployment.login())
    try:
        deadline = time.monotonic() + 180
        while api.dag(dag_id) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"DAG {dag_id} never appeared; see {deployment.layout.logs}/dag-processor.log")
            time.sleep(1)
        api.unpause(dag_id)
        run_started, since = time.monotonic(), datetime.now(timezone.utc)
        run_id = api.trigger(dag_id)
        print(f"==> {dag_id} run {run_id} triggered; waiting for the scheduler and triggerer")
        api.wait(dag_id, run_id, timeout=900)
        run_wall = time.monotonic() - run_started
        summary = run_summary_from_xcom(api.xcom(dag_id, run_id, "workflow_summary"))
        print()
        print(format_report(summary.model_dump(mode="json") | {"run_id": run_id}))
        entries = read_log(sim_log)
        served = admitted(entries)
        refused = f", {len(entries) - len(served)} refused at once" if len(served) < len(entries) else ""
        print(f"Peak calls in flight: {peak_in_flight(served)} ({len(served)} calls{refused})")
        others = [r["dag_run_id"] for r in api.get(f"/dags/{dag_id}/dagRuns", order_by="-run_after", limit=100)["dag_runs"]
                  if r["dag_run_id"] != run_id and (not r.get("end_date") or datetime.fromisoformat(r["end_date"]) > since)]
        if others:
            print(f"(other runs of {dag_id} were running too, and their calls are counted: {', '.join(others)})")
        print(f"Run wall time: {run_wall:.1f} s; total with start-up: {time.monotonic() - started:.1f} s")
        return 0 if summary.status in ("completed", "partial") else 1
    finally:
        api.close()
        if not keep and not attached:
            print(f"==> stopping: {', '.join(deployment.down())}")


def main(argv: list[str] | None = None) -> int:
    from include.llm_simulator.testing import running_simulator

    parser = argparse.ArgumentParser(prog="python -m erp_agents.stack.demo", description=__doc__)
    parser.add_argument("--home", required=True)
    parser.add_argument("--dag", default="erp_nightly")
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--keep", action="store_true", help="leave the deployment running (make up)")
    parser.add_argument("--api-port", type=int, default=None)
    args = parser.parse_args(argv)
    deployment = Deployment(home=Path(args.home), api_port=args.api_port)
    sim_log = deployment.layout.logs / "simulator.jsonl"
    sim_log.parent.mkdir(parents=True, exist_ok=True)
    sim_log.unlink(missing_ok=True)
    with running_simulator(latency=args.latency, log_path=sim_log, api_key=DEMO_KEY) as sim:
        return run_demo(deployment, sim.openai_base_url, sim_log, args.dag, args.keep)


if __name__ == "__main__":
    raise SystemExit(main())
