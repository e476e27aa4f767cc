"""OrchestrationEngine on the embedded deployment at scale: 10 workflows x 50 independent agents,
5 s per LLM call, all runs started together; beside a scaled-down dag.test() baseline.

    .venv/bin/python bench/engine.py [--workflows 10] [--agents 50] [--latency 5] [--baseline-agents 10]

Reports the wall time from the first call the simulator saw to the last (bound: one latency, since
every agent is independent), the wall time from the first trigger to the last result, the peak of
calls in flight (from the simulator's JSONL log), and the peak memory (PSS, whole process tree) of
PostgreSQL and the triggerer, sampled every 0.5 s. The baseline runs one workflow of
``--baseline-agents`` through ``dag.test()`` (Airflow's in-process runner, one process) on the same
deployment's metadata DB and simulator. The EngineConfig's rate limits are set far above the load
so that they do not bind (the seed's defaults, 60 rpm and 10 at once, would).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

from erp_agents import Agent, EngineConfig, OpenAIClient, RateLimitConfig, Workflow  # noqa: E402
from erp_agents.engine import OrchestrationEngine  # noqa: E402
from erp_agents.engine_run import dag_of  # noqa: E402
from erp_agents.factory.plan import SUMMARY_TASK_ID  # noqa: E402
from erp_agents.stack import Deployment, processes  # noqa: E402
from erp_agents.stack.demo import admitted, peak_in_flight, read_log  # noqa: E402
from erp_agents.stack.settings import TRIGGERERS  # noqa: E402
from include.llm_simulator.testing import running_simulator  # noqa: E402

KEY = "sk-bench-engine-0123456789"
CONN_ID = "bench_openai"
UNBOUND = RateLimitConfig(requests_per_minute=100_000, requests_per_hour=None, requests_per_day=None,
                          tokens_per_minute=100_000_000, concurrent_requests=1000)


def workflow(name: str, agents: int) -> Workflow:
    return Workflow(
        name=name, module="Finance", max_parallel_agents=agents, allow_partial_completion=True,
        agents=[Agent(name=f"check_{i:03d}", module="Finance", llm_config={"model": "gpt-4o-mini", "max_tokens": 40},
                      prompt_template=f"Check item {i} of {name}.") for i in range(agents)],
    )


class MemoryPeaks(threading.Thread):
    """Peak PSS of PostgreSQL's and a triggerer's process trees while the runs go on."""

    def __init__(self, deployment: Deployment) -> None:
        super().__init__(daemon=True)
        self.deployment = deployment
        self.peaks = {"postgres": 0, "triggerer": 0}
        self.done = threading.Event()

    def sample(self) -> None:
        for name in TRIGGERERS:  # the peak of the busier triggerer
            info = processes.running(self.deployment.layout, name)
            self.peaks["triggerer"] = max(self.peaks["triggerer"], info.pss_bytes if info else 0)
        state = self.deployment.layout.read_state()
        pg = self.deployment.postgres(state) if state else None
        pid = pg.pid() if pg else None
        if pid:
            import psutil

            proc = psutil.Process(pid)
            total = sum(processes._pss(p) for p in [proc, *proc.children(recursive=True)])
            self.peaks["postgres"] = max(self.peaks["postgres"], total)

    def run(self) -> None:
        while not self.done.wait(0.5):
            self.sample()


def span(entries: list[dict[str, Any]]) -> float:
    return max(e["ts_end"] for e in entries) - min(e["ts_start"] for e in entries) if entries else 0.0


def _epoch(iso: str | None) -> float:
    return datetime.fromisoformat(iso).timestamp() if iso else float("nan")


def timeline(engine: OrchestrationEngine, results: list[Any], calls: list[dict[str, Any]], started: float,
             returned: float) -> dict[str, float]:
    """Where the wall time went, in seconds after the first trigger: from the simulator's log, the task
    instances' start and end dates (REST API) and when the last result reached the caller."""
    agents_end, summary_start, summary_end, runs_end = [], [], [], []
    for result in results:
        tis = engine.api.get(f"/dags/{result.workflow_id}/dagRuns/{result.run_id}/taskInstances", limit=1000)
        for ti in tis["task_instances"]:
            if ti["task_id"] == SUMMARY_TASK_ID:
                summary_start.append(_epoch(ti["start_date"]))
                summary_end.append(_epoch(ti["end_date"]))
            else:
                agents_end.append(_epoch(ti["end_date"]))
        run = engine.api.get(f"/dags/{result.workflow_id}/dagRuns/{result.run_id}")
        runs_end.append(_epoch(run["end_date"]))
    points = {
        "first_call": min(c["ts_start"] for c in calls), "last_call_start": max(c["ts_start"] for c in calls),
        "last_call_end": max(c["ts_end"] for c in calls), "last_agent_task_end": max(agents_end),
        "first_summary_start": min(summary_start), "last_summary_end": max(summary_end),
        "last_run_end": max(runs_end), "last_result_returned": returned,
    }
    return {name: round(at - started, 1) for name, at in points.items()}


def engine_phase(engine: OrchestrationEngine, sim: Any, workflows: int, agents: int) -> dict[str, Any]:
    ids = [engine.register_workflow(workflow(f"bench_engine_{w:02d}", agents), source=__file__) for w in range(workflows)]
    sim.reset()
    memory = MemoryPeaks(engine.deployment)
    memory.start()
    returned: list[float] = []

    def execute(dag_id: str) -> Any:
        result = engine.execute_workflow(dag_id)
        returned.append(time.time())
        return result

    started, started_at = time.monotonic(), time.time()
    with ThreadPoolExecutor(workflows) as pool:
        results = list(pool.map(execute, ids))
    wall = time.monotonic() - started
    memory.done.set()
    memory.join()
    calls = admitted(sim.requests())
    return {
        "timeline_s": timeline(engine, results, calls, started_at, max(returned)),
        "workflows": workflows, "agents": workflows * agents,
        "statuses": sorted({r.status.value for r in results}),
        "agents_succeeded": sum(1 for r in results for a in r.agent_results.values() if a.state == "success"),
        "calls": len(calls), "calls_ok": sum(1 for c in calls if c["status"] == 200),
        "calls_span_s": round(span(calls), 1), "trigger_to_results_s": round(wall, 1),
        "peak_in_flight": peak_in_flight(calls),
        "pss_mib": {k: round(v / 2**20) for k, v in memory.peaks.items()},
    }


def baseline_phase(engine: OrchestrationEngine, sim: Any, agents: int, conn_env: dict[str, str]) -> dict[str, Any]:
    """One workflow through dag.test() in its own process (as the engine ran runs before the deployment)."""
    flow = workflow("bench_dag_test", agents)
    engine.register_workflow(flow, source=__file__)  # serialized in the engine bundle; stays paused
    request = {"workflow": flow.model_dump(mode="json"), "engine": engine.config.model_dump(mode="json"),
               "source": str(engine.deployment.layout.engine_bundle / "bench_dag_test.py")}
    with tempfile.TemporaryDirectory() as tmp:
        req, res = Path(tmp) / "request.json", Path(tmp) / "result.json"
        req.write_text(json.dumps(request))
        env = engine.deployment.env(conn_env)
        sim.reset()
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "erp_agents.engine_run", str(req), str(res)], env=env,
                              cwd=ROOT, capture_output=True, text=True, timeout=3600)
        wall = time.monotonic() - started
    if done.returncode != 0:
        return {"error": done.stderr[-2000:]}
    calls = admitted(sim.requests())
    return {"agents": agents, "calls": len(calls), "calls_span_s": round(span(calls), 1),
            "process_wall_s": round(wall, 1), "peak_in_flight": peak_in_flight(calls)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflows", type=int, default=10)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--latency", type=float, default=5.0)
    parser.add_argument("--baseline-agents", type=int, default=10, help="0 skips the dag.test() baseline")
    parser.add_argument("--home", help="AIRFLOW_HOME of the deployment (default: a temporary one, removed)")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)

    temporary = args.home is None
    home = Path(args.home or tempfile.mkdtemp(prefix="erp-agents-bench-"))
    if os.geteuid() == 0 and not (home / "postgres").exists():  # the server's own user must reach its data
        from tests.stack import reachable

        reachable(home)
    dags = home / "bench_dags"
    dags.mkdir(parents=True, exist_ok=True)  # no DAGs of the repo's: only what the bench registers
    with running_simulator(latency=args.latency, api_key=KEY, log_path=home / "simulator.jsonl") as sim:
        client = OpenAIClient(api_key=KEY, base_url=sim.openai_base_url, conn_id=CONN_ID)
        deployment = Deployment(home=home, dags_folder=dags, api_port=0)
        started = time.monotonic()
        conn_env = {f"AIRFLOW_CONN_{CONN_ID.upper()}": client.connection_json()}
        deployment.up(extra_env={**conn_env, "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"})
        up_s = time.monotonic() - started
        config = EngineConfig(rate_limit_config=UNBOUND)
        try:
            with OrchestrationEngine(config, llm_client=client, home=home, run_timeout=1800) as engine:
                figures: dict[str, Any] = {"latency_s": args.latency, "up_s": round(up_s, 1), "load_average_1m": os.getloadavg()[0]}
                figures["engine"] = engine_phase(engine, sim, args.workflows, args.agents)
                figures["engine"]["x_latency"] = round(figures["engine"]["calls_span_s"] / args.latency, 2)
                if args.baseline_agents:
                    figures["dag_test"] = baseline_phase(engine, sim, args.baseline_agents, conn_env)
                figures["load_average_1m_end"] = os.getloadavg()[0]
        finally:
            deployment.down()
            if temporary:
                shutil.rmtree((home / "postgres").resolve().parent if (home / "postgres").is_symlink() else home / "postgres",
                              ignore_errors=True)
                shutil.rmtree(home, ignore_errors=True)
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
