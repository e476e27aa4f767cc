#!/usr/bin/env python
"""Fan-out benchmark: many independent LLM agents, trigger-started vs plain worker tasks.

Run from the repo root::

    python bench/fanout.py [--agents-per-workflow 50] [--workflows 10] [--latency 5] [--parallelism 32]
                           [--skip-baseline] [--phase-timeout 1200] [--database erp_agents_bench] [--clean]
                           [--no-bytecode-cache]

It generates a dags folder with W workflow specs of N independent agents each (``fanout_NN``) and
W plain DAGs (``plain_NN``, one file each) whose N PythonOperator tasks make the same chat completion
with the ``openai`` SDK on a worker. It starts the LLM simulator (every request takes ``--latency`` seconds)
and one real Airflow deployment (api-server, scheduler, dag-processor, triggerer, LocalExecutor) on
a fresh PostgreSQL database, then for each phase triggers the W runs at once and measures the wall
time until every agent task is finished, peak requests in flight, and peak RSS of the triggerer and
scheduler process trees. Results are printed as a table and written to bench/results/fanout.json.

Exit status: 0 when every agent task of every phase succeeded, 1 on failures or a timeout, 130 on
Ctrl-C.
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
import platform  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
import psutil  # noqa: E402
import psycopg2  # noqa: E402
import yaml  # noqa: E402

from include.llm_simulator.testing import running_simulator  # noqa: E402
from tests.stack import AirflowStack, airflow_stack  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "fanout.json"
PYCACHE = Path(tempfile.gettempdir()) / "erp-fanout-pycache"
# Imported once before the stack starts so that no measured process compiles them (see use_bytecode_cache).
WARM_MODULES = (
    "airflow.sdk", "airflow.sdk.execution_time.task_runner", "airflow.sdk.execution_time.supervisor",
    "airflow.jobs.triggerer_job_runner", "airflow.jobs.scheduler_job_runner", "airflow.executors.local_executor",
    "airflow.providers.standard.operators.python", "airflow.providers.openai.hooks.openai",
    "airflow.providers.anthropic.hooks.anthropic", "openai", "pydantic_ai", "pydantic_ai.models.openai",
    "pydantic_ai.providers.openai", "erp_agents.factory.loader", "erp_agents.triggers.agent",
    "erp_agents.operators.agent", "erp_agents.operators.summary", "erp_agents.plugin",
)
PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
MODEL = "gpt-4o-mini"
MAX_TOKENS = 50
MODULE = "Finance"
SUMMARY_TASK_ID = "workflow_summary"
FINISHED = ("success", "failed", "upstream_failed", "skipped", "removed")
SAMPLE_EVERY = 0.5
BLOCKED_RE = re.compile(r"async thread was blocked for ([0-9.]+) seconds")


class BenchError(RuntimeError):
    """A phase timed out or could not start; the message says which and why."""


# --------------------------------------------------------------------------------------------------
# Generated DAGs


def agent_names(count: int) -> list[str]:
    width = max(2, len(str(count)))
    return [f"agent_{i:0{width}d}" for i in range(1, count + 1)]


def prompt_for(workflow: int, agent: int) -> str:
    return f"In one sentence, name a check for closing the books of cost centre {workflow * 1000 + agent}."


def fanout_dag_ids(workflows: int) -> list[str]:
    return [f"fanout_{w:02d}" for w in range(1, workflows + 1)]


def plain_dag_ids(workflows: int) -> list[str]:
    return [f"plain_{w:02d}" for w in range(1, workflows + 1)]


BASELINE_DAG = '''"""Baseline for bench/fanout.py: workflow {workflow} as plain PythonOperator tasks on workers.

Each task makes one synchronous chat completion with the openai SDK. The endpoint comes from the
AIRFLOW_CONN_OPENAI_DEFAULT environment variable, read when the task runs (not when the file is parsed).
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG

WORKFLOW = {workflow}
AGENTS = {agents}
WIDTH = {width}
MODEL = {model!r}
MAX_TOKENS = {max_tokens}


def prompt_for(workflow: int, agent: int) -> str:
    return f"In one sentence, name a check for closing the books of cost centre {{workflow * 1000 + agent}}."


def call_model(prompt: str) -> str:
    import openai

    conn = json.loads(os.environ["AIRFLOW_CONN_OPENAI_DEFAULT"])
    client = openai.OpenAI(base_url=conn["host"], api_key=conn["password"], max_retries=0, timeout=120.0)
    try:
        response = client.chat.completions.create(
            model=MODEL, max_tokens=MAX_TOKENS, messages=[{{"role": "user", "content": prompt}}]
        )
    finally:
        client.close()
    return response.choices[0].message.content or ""


with DAG(
    dag_id=f"plain_{{WORKFLOW:02d}}",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_tasks=AGENTS,
    max_active_runs=16,
    tags={{"bench"}},
) as dag:
    for _a in range(1, AGENTS + 1):
        PythonOperator(
            task_id=f"agent_{{_a:0{{WIDTH}}d}}",
            python_callable=call_model,
            op_kwargs={{"prompt": prompt_for(WORKFLOW, _a)}},
            retries=0,
        )
'''


def write_dags_folder(folder: Path, workflows: int, agents: int) -> None:
    specs = folder / "specs"
    specs.mkdir(parents=True)
    shutil.copy(ROOT / "dags" / "erp_agents_dags.py", folder / "erp_agents_dags.py")
    names = agent_names(agents)
    for w, dag_id in enumerate(fanout_dag_ids(workflows), start=1):
        spec = {
            "kind": "Workflow",
            "version": 1,
            "name": dag_id,
            "description": f"Benchmark fan-out: {agents} independent agents",
            "module": MODULE,
            "schedule": None,
            "max_parallel_agents": agents,
            "agents": [
                {
                    "name": name,
                    "module": MODULE,
                    "llm_config": {"model": MODEL, "max_tokens": MAX_TOKENS},
                    "prompt_template": prompt_for(w, a),
                    "max_retries": 0,
                }
                for a, name in enumerate(names, start=1)
            ],
        }
        (specs / f"{dag_id}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    # One DAG per file, as usual: a worker parses only its DAG's file, and a single file with all
    # W x N operators takes longer than the 30 s DagBag import timeout when 32 workers parse it at once.
    for w, dag_id in enumerate(plain_dag_ids(workflows), start=1):
        (folder / f"{dag_id}.py").write_text(
            BASELINE_DAG.format(workflow=w, agents=agents, width=max(2, len(str(agents))),
                                model=MODEL, max_tokens=MAX_TOKENS),
            encoding="utf-8",
        )


# --------------------------------------------------------------------------------------------------
# Infrastructure


def fresh_database(name: str) -> str:
    conn = psycopg2.connect(PG_ADMIN_DSN)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()
    return f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"


def use_bytecode_cache() -> None:
    """Let every process of the benchmark read and write .pyc files under PYCACHE.

    With PYTHONDONTWRITEBYTECODE set and no __pycache__ in the virtualenv, every new Python process
    compiles Airflow, openai and pydantic-ai from source (several CPU seconds each), which would
    dominate the worker-task baseline. A deployment installed with pip has .pyc files; a separate
    prefix gives the same effect without writing into the virtualenv or the repository. Children
    inherit this environment (tests.stack copies it into every Airflow process).
    """
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    PYCACHE.mkdir(parents=True, exist_ok=True)
    code = ("import importlib\n"
            f"for name in {WARM_MODULES!r}:\n"
            "    try:\n        importlib.import_module(name)\n"
            "    except Exception as exc:\n        print(f'warm-up: {name}: {exc!r}')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "plugins")])
    env["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="erp-fanout-warm-")
    try:
        subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, timeout=900, check=False)
    finally:
        shutil.rmtree(env["AIRFLOW_HOME"], ignore_errors=True)


def load_average() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return -1.0


def check_alive(st: AirflowStack) -> None:
    for name, proc in st.processes.items():
        if proc.poll() is not None:
            raise BenchError(f"{name} exited with {proc.returncode}:\n{st.log_of(name)[-3000:]}")


def tree_memory(pid: int, *, pss: bool) -> tuple[int, int, int]:
    """(RSS, PSS, process count) of a process and all its descendants, bytes.

    RSS counts shared pages once per process (forked workers inflate it); PSS splits them fairly.
    PSS is read from /proc/<pid>/smaps_rollup and is 0 where unavailable or when ``pss`` is False.
    """
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0, 0, 0
    rss = pss_total = 0
    for proc in procs:
        try:
            if pss:
                info = proc.memory_full_info()
                rss += info.rss
                pss_total += getattr(info, "pss", 0)
            else:
                rss += proc.memory_info().rss
        except psutil.Error:
            pass
    return rss, pss_total, len(procs)


class Sampler(threading.Thread):
    """Every 0.5 s: RSS of the triggerer and scheduler trees and the simulator's in-flight requests."""

    def __init__(self, st: AirflowStack, sim: Any) -> None:
        super().__init__(daemon=True)
        self.pids = {name: st.processes[name].pid for name in ("triggerer", "scheduler")}
        self.sim = sim
        self.stop_event = threading.Event()
        self.peak_rss = {name: 0 for name in self.pids}
        self.peak_pss = {name: 0 for name in self.pids}
        self.peak_procs = {name: 0 for name in self.pids}
        self.peak_in_flight = 0
        self.samples = 0

    def run(self) -> None:
        while not self.stop_event.is_set():
            for name, pid in self.pids.items():
                # PSS costs a read of smaps per process: sample it every 4th round only.
                rss, pss, procs = tree_memory(pid, pss=self.samples % 4 == 0)
                self.peak_rss[name] = max(self.peak_rss[name], rss)
                self.peak_pss[name] = max(self.peak_pss[name], pss)
                self.peak_procs[name] = max(self.peak_procs[name], procs)
            try:
                stats = self.sim.stats()
                self.peak_in_flight = max(self.peak_in_flight, int(stats["in_flight"]),
                                          int(stats["peak_in_flight"]))
            except Exception:  # a missed sample is not worth failing the benchmark for
                pass
            self.samples += 1
            self.stop_event.wait(SAMPLE_EVERY)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=10)


class ApiClient:
    """The api-server's REST API; gets a token from /auth/token when the API asks for one."""

    def __init__(self, port: int) -> None:
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0)
        self.headers: dict[str, str] = {}

    def login(self) -> None:
        response = self.http.get("/api/v2/dags", params={"limit": 1})
        if response.status_code in (401, 403):
            token = self.http.get("/auth/token")
            token.raise_for_status()
            self.headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            self.http.get("/api/v2/dags", params={"limit": 1}, headers=self.headers).raise_for_status()
        else:
            response.raise_for_status()

    def unpause(self, dag_id: str) -> None:
        response = self.http.patch(f"/api/v2/dags/{dag_id}", headers=self.headers, json={"is_paused": False},
                                   params={"update_mask": "is_paused"})
        if response.status_code >= 400:
            raise BenchError(f"unpausing {dag_id} failed: HTTP {response.status_code} {response.text[:500]}")

    def trigger(self, dag_id: str, run_id: str) -> None:
        response = self.http.post(f"/api/v2/dags/{dag_id}/dagRuns", headers=self.headers,
                                  json={"dag_run_id": run_id, "logical_date": None})
        if response.status_code >= 400:
            raise BenchError(f"triggering {dag_id} failed: HTTP {response.status_code} {response.text[:500]}")

    def close(self) -> None:
        self.http.close()


# --------------------------------------------------------------------------------------------------
# One phase


def agent_task_rows(st: AirflowStack, run_id: str) -> list[dict[str, Any]]:
    return st.query(
        "SELECT dag_id, task_id, state, start_date, end_date, try_number FROM task_instance "
        "WHERE run_id = :r AND task_id <> :s",
        r=run_id, s=SUMMARY_TASK_ID,
    )


def failure_excerpt(st: AirflowStack, phase: str, failed: list[dict[str, Any]]) -> str:
    """A short sample of the error: triggerer log lines for agents, the task log for plain tasks."""
    lines: list[str] = []
    if phase == "agents":
        log = st.log_of("triggerer").splitlines()
        hits = [i for i, line in enumerate(log) if " failed (" in line or "Traceback" in line or "ERROR" in line]
        for i in hits[:3]:
            lines += log[i:i + 12]
    if not lines and failed:
        row = failed[0]
        pattern = f"dag_id={row['dag_id']}/run_id=*/task_id={row['task_id']}/*"
        for path in sorted((st.home / "logs").glob(pattern))[:2]:
            lines.append(f"--- {path}")
            lines += path.read_text(errors="replace").splitlines()[-25:]
    return "\n".join(lines[:60])


def run_phase(st: AirflowStack, sim: Any, api: ApiClient, *, phase: str, dag_ids: list[str], agents: int,
              latency: float, timeout: float) -> dict[str, Any]:
    expected = len(dag_ids) * agents
    run_id = f"bench_{phase}_{int(time.time())}"
    print(f"\n[{phase}] triggering {len(dag_ids)} runs x {agents} tasks (run_id {run_id})", flush=True)
    load_before = load_average()
    sim.reset()
    sampler = Sampler(st, sim)
    sampler.start()
    try:
        t0 = datetime.now(timezone.utc)
        mono0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=len(dag_ids)) as pool:
            list(pool.map(lambda d: api.trigger(d, run_id), dag_ids))
        trigger_s = time.monotonic() - mono0
        print(f"[{phase}] all runs triggered in {trigger_s:.2f}s", flush=True)

        deadline = mono0 + timeout
        last_report = 0.0
        while True:
            check_alive(st)
            rows = agent_task_rows(st, run_id)
            states: dict[str, int] = {}
            for row in rows:
                states[str(row["state"])] = states.get(str(row["state"]), 0) + 1
            done = sum(n for s, n in states.items() if s in FINISHED)
            if len(rows) >= expected and done == len(rows):
                break
            now = time.monotonic()
            if now - last_report >= 10:
                print(f"[{phase}] {now - mono0:6.1f}s  {len(rows)}/{expected} task instances  {states}", flush=True)
                last_report = now
            if now > deadline:
                raise BenchError(f"phase {phase} timed out after {timeout:.0f}s: {len(rows)}/{expected} task "
                                 f"instances, states {states}")
            time.sleep(SAMPLE_EVERY)
    finally:
        sampler.stop()
    stats = sim.stats()
    ends = [r["end_date"] for r in rows if r["end_date"] is not None]
    end = max(ends) if ends else datetime.now(timezone.utc)
    wall = (end - t0).total_seconds()
    requests = sim.requests()
    reruns = st.query(
        "SELECT count(*) AS n FROM task_reschedule tr JOIN task_instance ti ON ti.id = tr.ti_id "
        "WHERE ti.run_id = :r", r=run_id)
    retried = sum(1 for r in rows if (r["try_number"] or 0) > 1)
    starts = [float(e["ts_start"]) for e in requests if e.get("ts_start") is not None]
    t0_epoch = t0.timestamp()
    failed = [r for r in rows if r["state"] != "success"]
    result = {
        "run_id": run_id,
        "tasks_expected": expected,
        "wall_s": round(wall, 2),
        "lower_bound_s": latency,
        "ratio": round(wall / latency, 2) if latency else None,
        "trigger_s": round(trigger_s, 2),
        "peak_in_flight": max(sampler.peak_in_flight, int(stats["peak_in_flight"])),
        "requests": int(stats["total"]),
        "requests_by_status": stats.get("by_status", {}),
        "peak_rss_triggerer_mb": round(sampler.peak_rss["triggerer"] / 2**20, 1),
        "peak_rss_scheduler_mb": round(sampler.peak_rss["scheduler"] / 2**20, 1),
        "peak_pss_triggerer_mb": round(sampler.peak_pss["triggerer"] / 2**20, 1),
        "peak_pss_scheduler_mb": round(sampler.peak_pss["scheduler"] / 2**20, 1),
        "peak_processes": dict(sampler.peak_procs),
        "first_request_s": round(min(starts) - t0_epoch, 2) if starts else None,
        "last_request_start_s": round(max(starts) - t0_epoch, 2) if starts else None,
        "tasks_success": states.get("success", 0),
        "requests_ok": int(stats["total"]) == expected,
        "task_reschedules": int(reruns[0]["n"]) if reruns else 0,  # type: ignore[call-overload]
        "tasks_retried": retried,
        "task_states": states,
        "rss_samples": sampler.samples,
        "load_avg_1m_before": load_before,
        "load_avg_1m_after": load_average(),
    }
    print(f"[{phase}] done: wall {wall:.1f}s, {result['tasks_success']}/{expected} succeeded, "
          f"{result['requests']} requests, peak in flight {result['peak_in_flight']}", flush=True)
    if not result["requests_ok"]:
        print(f"[{phase}] WARNING: the simulator saw {result['requests']} requests for {expected} tasks "
              f"({result['task_reschedules']} task reschedules, {retried} tasks with more than one try)",
              flush=True)
    if failed:
        result["error_sample"] = failure_excerpt(st, phase, failed)
        print(f"[{phase}] {len(failed)} task(s) did not succeed, e.g. {failed[0]['dag_id']}.{failed[0]['task_id']} "
              f"({failed[0]['state']}); error sample:\n{result['error_sample']}", flush=True)
    # Let the runs finish (the agents' workflow_summary runs on a worker) before the next phase starts.
    drain_deadline = time.monotonic() + 180
    while time.monotonic() < drain_deadline:
        check_alive(st)
        runs = st.query("SELECT state, count(*) AS n FROM dag_run WHERE run_id = :r GROUP BY state", r=run_id)
        run_states = {str(r["state"]): int(r["n"]) for r in runs}
        if sum(n for s, n in run_states.items() if s in ("success", "failed")) == len(dag_ids):
            break
        time.sleep(1)
    result["run_states"] = run_states
    return result


# --------------------------------------------------------------------------------------------------
# Report


ROWS = (
    ("wall time (s)", "wall_s", "{:.1f}"),
    ("lower bound (s)", "lower_bound_s", "{:.1f}"),
    ("ratio wall / lower bound", "ratio", "{:.2f}"),
    ("peak agents in flight", "peak_in_flight", "{}"),
    ("requests seen by simulator", "requests", "{}"),
    ("peak RSS triggerer tree (MB)", "peak_rss_triggerer_mb", "{:.0f}"),
    ("peak RSS scheduler tree (MB)", "peak_rss_scheduler_mb", "{:.0f}"),
    ("peak PSS triggerer tree (MB)", "peak_pss_triggerer_mb", "{:.0f}"),
    ("peak PSS scheduler tree (MB)", "peak_pss_scheduler_mb", "{:.0f}"),
    ("first request after t0 (s)", "first_request_s", "{:.1f}"),
    ("last request start after t0 (s)", "last_request_start_s", "{:.1f}"),
    ("tasks succeeded", "tasks_success", "{}"),
    ("task reschedules / tasks retried", "reruns", "{}"),
    ("load average (1 min) before", "load_avg_1m_before", "{:.1f}"),
    ("load average (1 min) after", "load_avg_1m_after", "{:.1f}"),
)
TITLES = {"agents": "A: agents (triggerer)", "baseline": "B: PythonOperator"}


def print_table(results: dict[str, Any]) -> None:
    phases = results["phases"]
    cols = list(phases)
    first = max(len(r[0]) for r in ROWS) + 2
    width = max(24, *(len(TITLES[c]) + 2 for c in cols))
    print()
    print(f"Fan-out: {results['workflows']} workflows x {results['agents_per_workflow']} agents, latency "
          f"{results['latency_s']}s, parallelism {results['parallelism']}, Airflow {results['airflow_version']}")
    print("".ljust(first) + "".join(TITLES[c].rjust(width) for c in cols))
    for label, key, fmt in ROWS:
        cells = []
        for c in cols:
            value = phases[c].get(key)
            if key == "reruns":
                value = f"{phases[c]['task_reschedules']} / {phases[c]['tasks_retried']}"
            text = fmt.format(value) if value is not None else "-"
            if key in ("tasks_success", "requests"):
                text += f"/{phases[c]['tasks_expected']}"
            cells.append(text.rjust(width))
        print(label.ljust(first) + "".join(cells))
    if results.get("speedup") is not None:
        print(f"speed-up of A over B (B wall / A wall): {results['speedup']:.2f}x")
    print("RSS = sum over the process tree (shared pages counted in every process); PSS shares them out.")
    print(f"Results: {RESULTS}")


# --------------------------------------------------------------------------------------------------
# Main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents-per-workflow", type=int, default=50)
    parser.add_argument("--workflows", type=int, default=10)
    parser.add_argument("--latency", type=float, default=5.0, help="seconds each simulated model request takes")
    parser.add_argument("--parallelism", type=int, default=32, help="AIRFLOW__CORE__PARALLELISM")
    parser.add_argument("--skip-baseline", action="store_true", help="run only the agents phase")
    parser.add_argument("--phase-timeout", type=float, default=1200.0, help="seconds allowed per phase")
    parser.add_argument("--database", default="erp_agents_bench", help="PostgreSQL database (dropped first)")
    parser.add_argument("--clean", action="store_true",
                        help="remove the work dir (Airflow home, logs, simulator log) after a successful run")
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help=f"do not use (and warm) the .pyc cache in {PYCACHE}; keep the inherited setting")
    args = parser.parse_args(argv)
    if args.workflows < 1 or args.workflows > 99 or args.agents_per_workflow < 1:
        parser.error("--workflows must be 1..99 and --agents-per-workflow at least 1")
    return args


def airflow_version() -> str:
    try:
        from importlib.metadata import version

        return version("apache-airflow")
    except Exception:
        return "unknown"


def benchmark(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    dags = work / "dags"
    write_dags_folder(dags, args.workflows, args.agents_per_workflow)
    conn_uri = fresh_database(args.database)
    total = args.workflows * args.agents_per_workflow
    results: dict[str, Any] = {
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "workflows": args.workflows,
        "agents_per_workflow": args.agents_per_workflow,
        "latency_s": args.latency,
        "parallelism": args.parallelism,
        "airflow_version": airflow_version(),
        "database": "postgresql",
        "machine": {"cpus": os.cpu_count(), "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
                    "python": platform.python_version()},
        "phases": {},
        "speedup": None,
    }
    print(f"work dir {work}; database {args.database}", flush=True)
    if not args.no_bytecode_cache:
        mono = time.monotonic()
        use_bytecode_cache()
        print(f"bytecode cache {PYCACHE} warm after {time.monotonic() - mono:.0f}s", flush=True)
    results["bytecode_cache"] = None if args.no_bytecode_cache else str(PYCACHE)
    with running_simulator(latency=args.latency, log_path=work / "simulator.jsonl") as sim:
        extra_env = {
            "AIRFLOW_CONN_OPENAI_DEFAULT": json.dumps(
                {"conn_type": "openai", "password": "sim-key", "host": sim.openai_base_url}),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__PARALLELISM": str(args.parallelism),
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "500",
            "AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG": "16",
            "AIRFLOW__CORE__DEFAULT_POOL_TASK_SLOT_COUNT": "1024",
            "AIRFLOW__TRIGGERER__CAPACITY": str(max(1000, 2 * total)),
            # A timeout, not a throughput knob: 32 workers parsing at once on 2 cores can pass 30 s.
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        }
        print(f"simulator at {sim.openai_base_url}; migrating DB and starting Airflow ...", flush=True)
        mono = time.monotonic()
        with airflow_stack(work / "home", extra_env=extra_env, sql_alchemy_conn=conn_uri, dags_folder=dags) as st:
            print(f"api-server up on port {st.api_port} after {time.monotonic() - mono:.0f}s", flush=True)
            pool = st.query("SELECT slots FROM slot_pool WHERE pool = 'default_pool'")
            if not pool or int(pool[0]["slots"]) < total:  # type: ignore[call-overload]
                st.airflow("pools", "set", "default_pool", "1024", "default pool")
            wanted = fanout_dag_ids(args.workflows) + ([] if args.skip_baseline else plain_dag_ids(args.workflows))
            try:
                st.wait_dags(wanted, timeout=300)
            except TimeoutError as exc:
                raise BenchError(str(exc)) from None
            print(f"{len(wanted)} DAGs serialized after {time.monotonic() - mono:.0f}s", flush=True)
            api = ApiClient(st.api_port)
            try:
                api.login()
                paused = [str(r["dag_id"]) for r in st.query("SELECT dag_id FROM dag WHERE is_paused")
                          if r["dag_id"] in wanted]
                for dag_id in paused:
                    api.unpause(dag_id)
                if paused:
                    print(f"unpaused {len(paused)} DAGs", flush=True)
                results["phases"]["agents"] = run_phase(
                    st, sim, api, phase="agents", dag_ids=fanout_dag_ids(args.workflows),
                    agents=args.agents_per_workflow, latency=args.latency, timeout=args.phase_timeout)
                if not args.skip_baseline:
                    results["phases"]["baseline"] = run_phase(
                        st, sim, api, phase="baseline", dag_ids=plain_dag_ids(args.workflows),
                        agents=args.agents_per_workflow, latency=args.latency, timeout=args.phase_timeout)
            finally:
                api.close()
                scan_logs(st, results)
    phases = results["phases"]
    if "baseline" in phases and phases["agents"]["wall_s"] > 0:
        results["speedup"] = round(phases["baseline"]["wall_s"] / phases["agents"]["wall_s"], 2)
    return results


def scan_logs(st: AirflowStack, results: dict[str, Any]) -> None:
    """Count ERROR lines and tracebacks in the component logs (reported, never fatal)."""
    counts = {}
    for name in ("triggerer", "scheduler", "dag-processor", "api-server"):
        try:
            text = st.log_of(name)
        except OSError:
            continue
        lines = text.splitlines()
        counts[name] = {"error_lines": sum(" ERROR " in ln or "[error" in ln for ln in lines),
                        "tracebacks": text.count("Traceback (most recent call last)")}
        blocked = [float(m.group(1)) for m in map(BLOCKED_RE.search, lines) if m]
        if blocked:
            counts[name]["loop_blocked_warnings"] = len(blocked)
            counts[name]["loop_blocked_max_s"] = max(blocked)
    results["log_errors"] = counts


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    work = Path(tempfile.mkdtemp(prefix="erp-fanout-"))
    ok = False
    try:
        results = benchmark(args, work)
    except KeyboardInterrupt:
        print(f"\ninterrupted; stopped everything. Logs kept in {work}", file=sys.stderr)
        return 130
    except (BenchError, TimeoutError) as exc:
        print(f"\nFAILED: {exc}\nLogs kept in {work}", file=sys.stderr)
        return 1
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    print_table(results)
    if any(len(n) > 2 or n["error_lines"] or n["tracebacks"] for n in results.get("log_errors", {}).values()):
        print(f"component logs: {json.dumps(results['log_errors'])}")
    ok = all(p["tasks_success"] == p["tasks_expected"] for p in results["phases"].values())
    if not ok:
        print(f"FAILED: some tasks did not succeed (see above). Logs kept in {work}", file=sys.stderr)
        return 1
    if args.clean:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"logs kept in {work} (Airflow home, component logs, simulator.jsonl)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
