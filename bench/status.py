#!/usr/bin/env python
"""Status benchmark: get_system_status over 10,000 agent runs in 7 days, beside a plain REST listing.

Run from the repo root::

    python bench/status.py [--workflows 20] [--agents 25] [--runs 20] [--repeat 5]

It writes W workflow specs of A agents, serializes them into a fresh PostgreSQL metadata database
(``erp_agents_status_bench`` on 127.0.0.1:5432), starts Airflow's API server alone, creates W x R runs
through the REST API and then spreads them over the last 7 days (states, start/end, durations, some
retries, ~3 % failed agents, partial and failed runs) with one UPDATE per table; the ledger gets one
settled request per agent (``erp_agents_status_bench_gov``). Then it times, against that server:

* ``/erp-agents/api/status?window_hours=168``, the plugin route: cold = the API server's first call,
  warm = the median of the next ones;
* ``python -m erp_agents.monitoring.commands status --json``, the CLI: whole process, and its status
  call alone;
* the plain REST listing of the same task instances: ``GET .../taskInstances`` 100 per page (the
  server's maximum page size), and the batch ``POST .../taskInstances/list`` in one page.

Results are printed and written to bench/results/status.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (str(ROOT / "plugins"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
from erp_agents.stack.settings import Layout  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from tests.services import fresh_postgres_database  # noqa: E402
from tests.stack import AirflowStack, airflow_stack  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "status.json"
SPEC = """kind: Workflow
version: 1
name: {name}
module: Finance
schedule: null
cost_budget: 5.00
allow_partial_completion: true
agents:
{agents}"""
AGENT = """  - name: agent_{i:02d}
    module: Finance
    description: agent {i}
    llm_config: {{model: gpt-4o-mini, max_tokens: 50}}
    prompt_template: "Check item {i}"
    critical: false
"""
SPREAD_RUNS = """
WITH r AS (SELECT id, row_number() OVER (ORDER BY id) AS n, count(*) OVER () AS total FROM dag_run)
UPDATE dag_run d SET
  run_after = now() - ((r.n::float / r.total) * interval '7 days') + interval '1 minute',
  logical_date = now() - ((r.n::float / r.total) * interval '7 days') + interval '1 minute',
  start_date = now() - ((r.n::float / r.total) * interval '7 days') + interval '1 minute',
  end_date = now() - ((r.n::float / r.total) * interval '7 days') + interval '6 minutes',
  queued_at = now() - ((r.n::float / r.total) * interval '7 days'),
  state = CASE WHEN r.n % 25 = 0 THEN 'failed' ELSE 'success' END
FROM r WHERE d.id = r.id
"""
SPREAD_TASKS = """
UPDATE task_instance t SET
  state = CASE WHEN t.task_id = 'workflow_summary' THEN 'success'
               WHEN abs(hashtext(t.run_id || t.task_id)) % 33 = 0 THEN 'failed' ELSE 'success' END,
  try_number = CASE WHEN abs(hashtext(t.task_id || t.run_id)) % 10 = 0 THEN 2 ELSE 1 END,
  start_date = d.start_date + (abs(hashtext(t.task_id)) % 60) * interval '1 second',
  end_date = d.start_date
    + (abs(hashtext(t.task_id)) % 60 + 5 + abs(hashtext(t.run_id || t.task_id)) % 20) * interval '1 second',
  duration = 5 + abs(hashtext(t.run_id || t.task_id)) % 20
FROM dag_run d WHERE d.dag_id = t.dag_id AND d.run_id = t.run_id
"""


def write_specs(folder: Path, workflows: int, agents: int) -> list[str]:
    (folder / "specs").mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dags" / "erp_agents_dags.py", folder / "erp_agents_dags.py")
    names = [f"status_bench_{w:02d}" for w in range(workflows)]
    for name in names:
        body = "".join(AGENT.format(i=i) for i in range(agents))
        (folder / "specs" / f"{name}.yaml").write_text(SPEC.format(name=name, agents=body))
    return names


def seed(stack: AirflowStack, client: httpx.Client, names: list[str], runs: int, governance_url: str) -> int:
    """Runs through the REST API, then their history spread over 7 days, then the ledger's rows."""
    for name in names:
        for r in range(runs):
            client.post(
                f"/api/v2/dags/{name}/dagRuns", json={"dag_run_id": f"bench_{r:03d}", "logical_date": None}
            ).raise_for_status()
    db = create_engine(stack.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    with db.begin() as conn:
        conn.execute(text(SPREAD_RUNS))
        conn.execute(text(SPREAD_TASKS))
        tasks = conn.execute(
            text(
                "SELECT dag_id, run_id, task_id, end_date FROM task_instance "
                "WHERE task_id <> 'workflow_summary'"
            )
        ).all()
    db.dispose()
    from erp_agents.costs.ledger_tables import calls, metadata

    gov = create_engine(governance_url)
    metadata.create_all(gov)
    rows = [
        {
            "call_key": json.dumps([d, r, t, -1, 1, 1]),
            "dag_id": d,
            "run_id": r,
            "task_id": t,
            "map_index": -1,
            "try_number": 1,
            "call_no": 1,
            "state": "settled",
            "accounts": "[]",
            "reserved_micros": 2000,
            "actual_micros": 400 + len(t) * 10,
            "holder": "bench",
            "created_at": end.timestamp() - 2,
            "expires_at": end.timestamp() + 900,
            "settled_at": end.timestamp(),
            "day": end.date().isoformat(),
            "module": "Finance",
            "provider": "openai",
            "model": "gpt-4o-mini",
            "input_tokens": 120,
            "output_tokens": 30,
            "latency_s": 1.5,
            "retries": 0,
            "limiter_wait_s": 0.05,
        }
        for d, r, t, end in tasks
    ]
    with gov.begin() as conn:
        conn.execute(calls.insert(), rows)
    gov.dispose()
    return len(tasks)


def timed(fn: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def rest_listing_paged(client: httpx.Client, since: datetime) -> int:
    """What a plain client does: GET the task instances 100 at a time (the server's maximum page)."""
    seen, offset = 0, 0
    while True:
        page = client.get(
            "/api/v2/dags/~/dagRuns/~/taskInstances",
            params={"limit": 100, "offset": offset, "run_after_gte": since.isoformat()},
        ).json()
        seen += len(page["task_instances"])
        offset += 100
        if offset >= page["total_entries"]:
            return seen


def rest_listing_batch(client: httpx.Client, since: datetime) -> int:
    body = {"run_after_gte": since.isoformat(), "page_limit": 100_000}
    return len(client.post("/api/v2/dags/~/dagRuns/~/taskInstances/list", json=body).json()["task_instances"])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workflows", type=int, default=20)
    parser.add_argument("--agents", type=int, default=25)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="erp-status-bench-"))
    names = write_specs(home / "dags", args.workflows, args.agents)
    database = fresh_postgres_database("erp_agents_status_bench")
    governance = fresh_postgres_database("erp_agents_status_bench_gov")
    Layout(home).logs.mkdir(parents=True, exist_ok=True)
    env = {"ERP_AGENTS_GOVERNANCE_DB_URL": governance, "AIRFLOW__API__WORKERS": "1"}
    with airflow_stack(
        home, extra_env=env, sql_alchemy_conn=database, dags_folder=home / "dags", components=()
    ) as stack:
        stack.airflow("dags", "reserialize", timeout=900)
        stack.deployment.up(
            extra_env={"AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"), **env},
            components=("api-server",),
        )
        base = f"http://127.0.0.1:{stack.api_port}"
        user, password = stack.deployment.login()
        token = httpx.post(f"{base}/auth/token", json={"username": user, "password": password}).json()[
            "access_token"
        ]
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=300)
        t_seed, agent_runs = timed(lambda: seed(stack, client, names, args.runs, governance))
        runs_total = args.workflows * args.runs
        print(f"seeded {agent_runs} agent runs in {runs_total} runs over 7 days ({t_seed:.1f} s)")
        since = datetime.now(timezone.utc) - timedelta(hours=168)

        def route() -> dict[str, Any]:
            return dict(
                client.get("/erp-agents/api/status", params={"window_hours": 168}).raise_for_status().json()
            )

        cold, status = timed(route)
        warm = [timed(route)[0] for _ in range(args.repeat)]
        assert status["monitoring"]["agents"]["executed"] == agent_runs, status["monitoring"]["agents"]
        paged = [timed(lambda: rest_listing_paged(client, since)) for _ in range(2)]
        batch = [timed(lambda: rest_listing_batch(client, since)) for _ in range(args.repeat)]
        assert paged[0][1] >= agent_runs and batch[0][1] >= agent_runs

        cli_env = {**stack.env, "ERP_AGENTS_API_TOKEN": token}
        cli = [
            sys.executable,
            "-m",
            "erp_agents.monitoring.commands",
            "status",
            "--json",
            "--window-hours",
            "168",
            "--api-url",
            base,
            "--timing",
        ]
        cli_runs = []
        for _ in range(3):
            wall, done = timed(
                lambda: subprocess.run(
                    cli, env=cli_env, cwd=ROOT, capture_output=True, text=True, check=False
                )
            )
            if done.returncode != 0:
                print(done.stderr[-2000:])
                return 1
            cli_runs.append((wall, float(done.stderr.strip().rsplit(" ", 2)[-2])))
        client.close()

    result = {
        "agent_runs": agent_runs,
        "runs": args.workflows * args.runs,
        "window_hours": 168,
        "api_status_cold_s": round(cold, 3),
        "api_status_warm_median_s": round(statistics.median(warm), 3),
        "cli_process_median_s": round(statistics.median(w for w, _ in cli_runs), 3),
        "cli_status_call_median_s": round(statistics.median(s for _, s in cli_runs), 3),
        "rest_listing_paged_100_s": round(statistics.median(t for t, _ in paged), 3),
        "rest_listing_batch_one_page_s": round(statistics.median(t for t, _ in batch), 3),
    }
    result["api_status_vs_paged_listing"] = round(
        result["api_status_warm_median_s"] / result["rest_listing_paged_100_s"], 3
    )
    result["api_status_vs_batch_listing"] = round(
        result["api_status_warm_median_s"] / result["rest_listing_batch_one_page_s"], 3
    )
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {**result, "measured_at": datetime.now(timezone.utc).isoformat(), "cpus": os.cpu_count()},
            indent=2,
        )
    )
    ok = result["api_status_warm_median_s"] < 1.0 and result["cli_status_call_median_s"] < 1.0
    print("status under 1 s:", "yes" if ok else "NO")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
