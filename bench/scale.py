#!/usr/bin/env python
"""Scale benchmark: the five shapes of 500+ agents, on the embedded deployment or on the Celery cluster.

Run from the repo root::

    .venv/bin/python bench/scale.py [--topology embedded|cluster] [--shapes a,b,c,d,e] [--latency 5]
                                    [--baseline a] [--faults] [--json PATH]

Shapes (every request takes ``--latency`` seconds at the simulator; rate limits are set far above the
load, and the simulator enforces the same limits, so a limiter that let too much through would show
as a 429; concurrency is 500 per workflow):

- a: 10 workflows of 50 independent agents, all triggered at once;
- b: one workflow of 500 independent agents;
- c: one fan-out agent over 500 open invoices (chunks of 50: 10 mapped tasks);
- d: 5 workflows of 120 agents in 4 layers, each agent after 2 of the layer before;
- e: one fan-out agent over 2,000 open invoices (40 mapped tasks);
- r (alone, with ``--limits RPM,TPM,CONCURRENT``): 12 workflows of 50 agents under limits that bind;
- p: one workflow of 500 agents with ``max_parallel_agents: 100``: five waves (lower bound 5 latencies),
  and the run fails the bench if more than 100 were ever at the simulator at once;
- m: one workflow of 500 agents racing for a run budget worth about 100 of them; m0 is the same
  workflow with budgets off, its baseline.

``--fault-rate 0.1`` makes the simulator fail that share of requests (``--fault-kinds``); the table's
task retries and worker processes then show whether the failures stayed inside the calls.

For each shape it prints the wall time (from the first trigger to the last agent task's end in the
metadata DB), the lower bound (latency x dependency depth) and their ratio, peak requests in flight
at the simulator, request-start latency percentiles (from the first trigger), the peak PSS of the
triggerers, the workers and the scheduler, task states and task retries. ``--baseline a,...`` also
runs those shapes as plain PythonOperator tasks (one synchronous chat completion each, on workers) in
the same deployment, for comparison.

``--faults`` (cluster only) runs shape (a) while one Celery worker is killed with SIGKILL and the
triggerer running more of the agents is restarted. It then checks that every run completed, no rate limit was exceeded (no 429
from the simulator), no reservation is left held, and that no agent was charged more often than
the simulator served it; the requests the ledger did not charge must all have been in flight when
the triggerer was stopped (their reservations were released by the cancelled triggers).

Needs PostgreSQL at 127.0.0.1:5432 (the cluster's databases) and, for the cluster, Redis at
127.0.0.1:6379. The embedded topology starts its own PostgreSQL from the wheel. Results go to
bench/results/scale_<topology>.json. Exit status 1 if a run did not succeed or a check failed.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (str(ROOT / "plugins"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from typing import Any  # noqa: E402

import psutil  # noqa: E402
import yaml  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

from bench.floor import sdk_floor  # noqa: E402
from erp_agents.spec.models import EngineConfig, RateLimitConfig, RetryPolicy  # noqa: E402
from erp_agents.stack import processes  # noqa: E402
from erp_agents.stack.demo import admitted, peak_in_flight, read_log  # noqa: E402
from erp_agents.stack.rest import AirflowApi  # noqa: E402

MODEL, MAX_TOKENS, MODULE = "gpt-4o-mini", 50, "Finance"
SUMMARY = "workflow_summary"
# Far above the load: 2,000 requests in a few seconds, 500 at once per workflow and more across them.
UNBOUND = RateLimitConfig(requests_per_minute=100_000, requests_per_hour=None, requests_per_day=None,
                          tokens_per_minute=100_000_000, concurrent_requests=5_000)
FLOOR_SHAPES = frozenset("abcde")  # shapes whose limits do not bind: the bare SDK is their floor
SIM_KEY = "sim-key"  # the simulator accepts any key
MARKER = re.compile(r"\[(scale_[a-e]_\d\d|plain_[a-e]_\d\d)/([a-z0-9_]+)\]")


@dataclass(frozen=True)
class Shape:
    key: str
    title: str
    workflows: int
    agents: int = 0  # independent or layered agents per workflow
    layers: int = 1
    items: int = 0  # fan-out items (one agent)
    budget_agents: int = 0  # a run budget worth about this many agents (shape m)
    enforce_budget: bool = True  # False: the same agents with no budget set (the baseline of m)
    model: str = MODEL
    max_parallel: int = 500  # the workflow's max_parallel_agents

    @property
    def waves(self) -> int:
        """Rounds of agents a layer needs under max_parallel_agents (1 when the cap does not bind)."""
        per_layer = (self.agents or 1) // self.layers
        return -(-per_layer // self.max_parallel)

    def dag_ids(self, prefix: str = "scale") -> list[str]:
        return [f"{prefix}_{self.key}_{w:02d}" for w in range(1, self.workflows + 1)]

    @property
    def requests(self) -> int:
        return self.workflows * (self.agents or self.items)


SHAPES = {
    "a": Shape("a", "10 workflows x 50 independent agents", workflows=10, agents=50),
    "b": Shape("b", "1 workflow of 500 agents", workflows=1, agents=500),
    "c": Shape("c", "1 fan-out agent over 500 items", workflows=1, items=500),
    "d": Shape("d", "5 workflows x 120 agents in 4 dependent layers", workflows=5, agents=120, layers=4),
    "e": Shape("e", "1 fan-out agent over 2,000 items", workflows=1, items=2000),
    # Run alone, with --limits: the engine's limits then bind, and the simulator enforces the same ones.
    "r": Shape("r", "12 workflows x 50 agents under binding rate limits", workflows=12, agents=50),
    # max_parallel_agents binds: each agent waits for one of the run's 100 slots (5 waves of 100).
    "p": Shape("p", "1 workflow of 500 agents, max_parallel_agents 100", workflows=1, agents=500, max_parallel=100),
    "m": Shape("m", "1 workflow of 500 agents racing for a budget worth about 100", workflows=1, agents=500,
               budget_agents=100, model="gpt-4o"),
    "m0": Shape("m0", "shape m with budgets off (its baseline)", workflows=1, agents=500, budget_agents=100,
                model="gpt-4o", enforce_budget=False),
}
BUDGET_PROMPT_TOKENS = 40  # about what one of the generated prompts counts
AP_ITEMS, ALL_ITEMS = 500, 2000  # shape c reviews the AP invoices, shape e all of them


# -- the dags folder ---------------------------------------------------------------------------------


def agent_name(i: int) -> str:
    return f"agent_{i:03d}"


def layered_dependencies(shape: Shape, i: int) -> list[int]:
    """Agent i (0-based) of layer L > 0 runs after two agents of layer L - 1."""
    size = shape.agents // shape.layers
    layer, position = divmod(i, size)
    if layer == 0:
        return []
    before = (layer - 1) * size
    return sorted({before + position, before + (position + 1) % size})


def prompt(dag_id: str, agent: str) -> str:
    return f"[{dag_id}/{agent}] In one sentence, name a check for closing the books of this cost centre."


def workflow_spec(shape: Shape, dag_id: str) -> dict[str, Any]:
    if shape.items:
        agents = [{
            "name": "reviewer", "module": MODULE, "llm_config": {"model": MODEL, "max_tokens": MAX_TOKENS},
            "for_each": {"tool": "finance.list_open_invoices", "arguments": {"type": "AP"} if shape.items == AP_ITEMS else {}},
            "chunk_size": 50, "max_items": ALL_ITEMS,
            "prompt_template": f"[{dag_id}/reviewer] Invoice {{{{ item.invoice_id }}}} of {{{{ item.counterparty }}}}: "
                               "the risk in one word.",
        }]
    else:
        agents = []
        for i in range(shape.agents):
            agent: dict[str, Any] = {"name": agent_name(i), "module": MODULE,
                                     "llm_config": {"model": shape.model, "max_tokens": MAX_TOKENS},
                                     "prompt_template": prompt(dag_id, agent_name(i))}
            if shape.budget_agents:
                agent["critical"] = False
            if shape.layers > 1 and (deps := layered_dependencies(shape, i)):
                agent["dependencies"] = [agent_name(d) for d in deps]
            agents.append(agent)
    spec = {"kind": "Workflow", "version": 1, "name": dag_id, "module": MODULE, "schedule": None,
            "description": f"Scale benchmark, shape {shape.key}: {shape.title}",
            "max_parallel_agents": shape.max_parallel, "timeout": 1800, "agents": agents}
    if shape.budget_agents and shape.enforce_budget:
        spec.update(cost_budget=budget_usd(shape), allow_partial_completion=True)
    return spec


def budget_usd(shape: Shape) -> float:
    """What about ``budget_agents`` agents cost at most: each one request of the generated prompt and
    up to max_tokens (the ledger reserves that worst case, then settles the real usage)."""
    from erp_agents.costs.pricing import worst_case_micros

    return round(shape.budget_agents * worst_case_micros(shape.model, "openai", None, BUDGET_PROMPT_TOKENS, MAX_TOKENS)
                 / 1e6, 6)


BASELINE_DAG = '''"""Baseline of bench/scale.py shape {key}: the same graph as PythonOperator tasks on workers."""
from __future__ import annotations

from datetime import datetime, timezone

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG

PROMPTS = {prompts!r}
DEPENDENCIES = {dependencies!r}


def call_model(prompt: str) -> str:
    import openai
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection("openai_default")
    client = openai.OpenAI(base_url=conn.host, api_key=conn.password, max_retries=0, timeout=120.0)
    try:
        answer = client.chat.completions.create(model={model!r}, max_tokens={max_tokens},
                                                messages=[{{"role": "user", "content": prompt}}])
    finally:
        client.close()
    return answer.choices[0].message.content or ""


with DAG(dag_id={dag_id!r}, schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc), catchup=False,
         max_active_tasks=500, tags={{"bench"}}):
    if {mapped!r}:
        PythonOperator.partial(task_id="reviewer", python_callable=call_model, retries=0).expand(
            op_args=[[p] for p in PROMPTS.values()])
    else:
        tasks = {{name: PythonOperator(task_id=name, python_callable=call_model, op_args=[p], retries=0)
                 for name, p in PROMPTS.items()}}
        for name, upstream in DEPENDENCIES.items():
            [tasks[u] for u in upstream] >> tasks[name]
'''


def baseline_dag(shape: Shape, dag_id: str, invoices: list[dict[str, str]]) -> str:
    if shape.items:
        chosen = [i for i in invoices if shape.items == ALL_ITEMS or i["type"] == "AP"][: shape.items]
        prompts = {f"item_{n:04d}": f"[{dag_id}/reviewer] Invoice {i['invoice_id']} of {i['counterparty']}: the risk in one word."
                   for n, i in enumerate(chosen)}
        dependencies: dict[str, list[str]] = {}
    else:
        prompts = {agent_name(i): prompt(dag_id, agent_name(i)) for i in range(shape.agents)}
        dependencies = {agent_name(i): [agent_name(d) for d in layered_dependencies(shape, i)]
                        for i in range(shape.agents) if shape.layers > 1 and layered_dependencies(shape, i)}
    return BASELINE_DAG.format(key=shape.key, prompts=prompts, dependencies=dependencies, model=MODEL,
                               max_tokens=MAX_TOKENS, dag_id=dag_id, mapped=bool(shape.items))


def write_erp_data(folder: Path) -> list[dict[str, str]]:
    """The sample ERP data with 2,000 open invoices, 500 of them AP (the fan-out shapes' items)."""
    shutil.copytree(ROOT / "include" / "erp" / "data", folder)
    with (folder / "invoices.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    fields = list(rows[0])
    invoices = []
    for n in range(ALL_ITEMS):
        row = dict(rows[n % len(rows)])
        kind = "AP" if n < AP_ITEMS else "AR"
        row.update(invoice_id=f"{kind}-BENCH-{n:05d}", type=kind, status="open", po_number="")
        invoices.append(row)
    with (folder / "invoices.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(invoices)
    return invoices


def write_dags_folder(folder: Path, shapes: list[Shape], baselines: list[Shape], invoices: list[dict[str, str]],
                      engine: EngineConfig | None) -> None:
    specs = folder / "specs"
    specs.mkdir(parents=True)
    shutil.copy(ROOT / "dags" / "erp_agents_dags.py", folder / "erp_agents_dags.py")
    if engine is not None:  # the embedded deployment reads it from its bundle; the cluster gets its own file
        from erp_agents.stack.bundle_files import spec_yaml

        (specs / "engine.yaml").write_text(spec_yaml(engine))
    for shape in shapes:
        for dag_id in shape.dag_ids():
            (specs / f"{dag_id}.yaml").write_text(yaml.safe_dump(workflow_spec(shape, dag_id), sort_keys=False))
    for shape in baselines:  # one DAG per file: a worker parses only its own DAG's file
        for dag_id in shape.dag_ids("plain"):
            (folder / f"{dag_id}.py").write_text(baseline_dag(shape, dag_id, invoices))


# -- topologies ---------------------------------------------------------------------------------------


class Topology:
    """Start/stop, URLs and the processes to sample, the same way for both deployments."""

    name: str
    metadata_url: str
    governance_url: str
    api_url: str
    simulator_log: Path
    task_logs: Path  # Airflow's task logs (base_log_folder): each trigger's log says when its runner started it

    def memory(self) -> dict[str, int]:
        raise NotImplementedError

    def pids(self) -> dict[str, int]:
        """The root process of each component whose CPU is counted, by name."""
        raise NotImplementedError

    def floor_processes(self) -> int:
        """How many processes run the agents' requests (the triggerers): the floor uses as many."""
        raise NotImplementedError

    def simulator_url(self) -> str:
        raise NotImplementedError

    def login(self) -> tuple[str, str]:
        raise NotImplementedError

    def down(self) -> None:
        raise NotImplementedError


class Embedded(Topology):
    name = "embedded"

    def __init__(self, work: Path, dags: Path, latency: float, env: dict[str, str],
                 limits: RateLimitConfig = UNBOUND, faults: dict[str, Any] | None = None) -> None:
        from erp_agents.stack import Deployment
        from include.llm_simulator.testing import running_simulator

        self.simulator_log = work / "simulator.jsonl"
        self._sim_cm = running_simulator(latency=latency, log_path=self.simulator_log, rpm=limits.requests_per_minute,
                                         tpm=limits.tokens_per_minute, max_concurrent=limits.concurrent_requests,
                                         **(faults or {}))
        sim = self._sim = self._sim_cm.__enter__()
        conn = json.dumps({"conn_type": "openai", "password": SIM_KEY, "host": sim.openai_base_url})
        self.deployment = Deployment(home=work / "home", dags_folder=dags, api_port=0)
        if os.geteuid() == 0:  # the embedded server's own user must reach its data folder
            from tests.stack import reachable

            reachable(work / "home")
        try:
            state, _ = self.deployment.up(extra_env={**env, "AIRFLOW_CONN_OPENAI_DEFAULT": conn,
                                                     "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"})
        except BaseException:
            self._sim_cm.__exit__(None, None, None)
            raise
        self.state = state
        self.metadata_url, self.governance_url, self.api_url = state.sql_alchemy_conn, state.governance_url, state.api_url
        self.task_logs = self.deployment.layout.logs / "airflow"

    def pids(self) -> dict[str, int]:
        from erp_agents.stack.settings import COMPONENTS

        found = {name: info.pid for name in COMPONENTS if (info := processes.running(self.deployment.layout, name))}
        pg = self.deployment.postgres(self.state)
        if pg is not None and (pid := pg.pid()) is not None:
            found["postgres"] = pid
        found["simulator"] = self._sim.process.pid
        return found

    def floor_processes(self) -> int:
        from erp_agents.stack.settings import TRIGGERERS

        return len(TRIGGERERS)

    def simulator_url(self) -> str:
        return str(self._sim.openai_base_url)

    def memory(self) -> dict[str, int]:
        from erp_agents.stack.settings import TRIGGERERS

        pss = {name: info.pss_bytes if (info := processes.running(self.deployment.layout, name)) else 0
               for name in (*TRIGGERERS, "scheduler")}  # the scheduler's tree holds the LocalExecutor workers
        return {"triggerer": max(pss[t] for t in TRIGGERERS), "scheduler": pss["scheduler"]}

    def login(self) -> tuple[str, str]:
        return self.deployment.login()

    def down(self) -> None:
        try:
            self.deployment.down()
        finally:
            self._sim_cm.__exit__(None, None, None)


class OnCluster(Topology):
    name = "cluster"

    def __init__(self, work: Path, dags: Path, latency: float, env: dict[str, str], engine: EngineConfig,
                 faults: dict[str, Any] | None = None) -> None:
        from erp_agents.stack.cluster import POSTGRES, Cluster
        from erp_agents.stack.cluster_settings import GOVERNANCE_DB, METADATA_DB

        limits = engine.rate_limit_config
        env = {**env, "LLM_SIM_RPM": str(limits.requests_per_minute), "LLM_SIM_TPM": str(limits.tokens_per_minute),
               "LLM_SIM_MAX_CONCURRENT": str(limits.concurrent_requests),
               **{f"LLM_SIM_{k.upper()}": str(v) for k, v in (faults or {}).items()}}
        self._saved_env = {name: os.environ.get(name) for name in env}
        os.environ.update(env)  # the components inherit it (ERP data, the simulator's limits); down() restores it
        self.cluster = Cluster(home=work / "cluster", api_port=0, simulator_latency=latency, dags_folder=dags, engine=engine)
        try:
            state, attached = self.cluster.up()
        except BaseException:
            self._restore_env()
            raise
        if attached:
            raise RuntimeError("a cluster was already running under this home")
        self.state = state
        self.simulator_log = self.cluster.layout.logs / "simulator.jsonl"
        self.task_logs = self.cluster.layout.logs / "airflow"
        self.metadata_url = f"postgresql+psycopg2://postgres@{POSTGRES}/{METADATA_DB}"
        self.governance_url = f"postgresql+psycopg2://postgres@{POSTGRES}/{GOVERNANCE_DB}"
        self.api_url = state.api_url

    def pids(self) -> dict[str, int]:
        from erp_agents.stack.cluster_settings import COMPONENTS

        # The machine's PostgreSQL and Redis serve other clients too: not counted here.
        return {name: info.pid for name in COMPONENTS if (info := processes.running(self.cluster.layout, name))}

    def floor_processes(self) -> int:
        from erp_agents.stack.cluster_settings import TRIGGERERS

        return len(TRIGGERERS)

    def simulator_url(self) -> str:
        return self.state.simulator_url.rstrip("/") + "/v1"

    def memory(self) -> dict[str, int]:
        from erp_agents.stack.cluster_settings import TRIGGERERS, WORKERS

        layout = self.cluster.layout
        pss = {name: info.pss_bytes if (info := processes.running(layout, name)) else 0
               for name in (*TRIGGERERS, *WORKERS, "scheduler")}
        return {"triggerer": max(pss[t] for t in TRIGGERERS), "worker": max(pss[w] for w in WORKERS),
                "scheduler": pss["scheduler"]}

    def login(self) -> tuple[str, str]:
        return self.cluster.login()

    def down(self) -> None:
        try:
            self.cluster.down()
        finally:
            self._restore_env()

    def _restore_env(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def reset_cluster_databases() -> None:
    """The cluster bench starts from empty databases (its DAG ids and ledger rows would mix otherwise)."""
    import psycopg2

    from erp_agents.stack.cluster_settings import GOVERNANCE_DB, METADATA_DB

    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for name in (METADATA_DB, GOVERNANCE_DB):
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        conn.close()


# -- measuring ----------------------------------------------------------------------------------------


def cpu_seconds(pids: dict[str, int]) -> dict[str, tuple[float, float]]:
    """(own, whole tree) CPU seconds, user + system, each component has used so far. A live process
    counts its own times; one that ended counts in its parent's reaped-children times, so nothing
    is counted twice. A triggerer's own CPU is its supervisor; its tree adds the trigger runner."""
    used: dict[str, tuple[float, float]] = {}
    for name, pid in pids.items():
        try:
            root = psutil.Process(pid)
            own = root.cpu_times()
            tree = own.user + own.system + own.children_user + own.children_system
            for child in root.children(recursive=True):
                try:
                    t = child.cpu_times()
                except psutil.Error:
                    continue
                tree += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            continue
        used[name] = (own.user + own.system, tree)
    return used


def cpu_used(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]) -> dict[str, dict[str, float]]:
    return {name: {"own": round(after[name][0] - before[name][0], 1), "tree": round(after[name][1] - before[name][1], 1)}
            for name in after if name in before}


class MemoryPeaks(threading.Thread):
    def __init__(self, topology: Topology) -> None:
        super().__init__(daemon=True)
        self.topology, self.peaks, self.done = topology, {}, threading.Event()

    def run(self) -> None:
        while not self.done.wait(1.0):
            for name, value in self.topology.memory().items():
                self.peaks[name] = max(self.peaks.get(name, 0), value)

    def stop(self) -> dict[str, int]:
        self.done.set()
        self.join()
        return {name: round(value / 2**20) for name, value in self.peaks.items()}


def query(url: str, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of one read against a deployment's database, on a connection of its own."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text(sql), params).all()]
    finally:
        engine.dispose()


def _of_runs(runs: dict[str, str]) -> dict[str, Any]:
    return {"dags": list(runs), "runs": list(runs.values())}


def task_rows(metadata_url: str, runs: dict[str, str]) -> list[dict[str, Any]]:
    return query(metadata_url, "SELECT dag_id, run_id, task_id, map_index, state, start_date, end_date, try_number, pid "
                 "FROM task_instance WHERE dag_id = ANY(:dags) AND run_id = ANY(:runs)", _of_runs(runs))


def worker_processes(metadata_url: str, runs: dict[str, str], rows: list[dict[str, Any]]) -> int:
    """Task processes that ran on a worker: every try that a worker started records its pid (the
    execution API's start call); a try that started and ended in the triggerer has none. Earlier tries
    are in task_instance_history."""
    earlier = query(metadata_url, "SELECT count(*) AS n FROM task_instance_history WHERE dag_id = ANY(:dags) "
                    "AND run_id = ANY(:runs) AND pid IS NOT NULL AND task_id != :summary",
                    {**_of_runs(runs), "summary": SUMMARY})
    return sum(1 for r in rows if r["pid"] is not None) + int(earlier[0]["n"])


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50": round(pick(0.5), 1), "p90": round(pick(0.9), 1), "p99": round(pick(0.99), 1), "max": round(ordered[-1], 1)}


def requests_since(log: Path, since: float, prefix: str) -> list[dict[str, Any]]:
    """The simulator's entries for this phase: started after its first trigger, marked with its DAG ids."""
    return [e for e in read_log(log) if (e.get("ts_start") or 0) >= since and f"[{prefix}_" in str(e.get("request"))]


class Profilers:
    """py-spy on each component's process tree for one phase: where the CPU of cpu_seconds() goes."""

    def __init__(self, folder: Path | None, pids: dict[str, int], label: str) -> None:
        self.running: list[subprocess.Popen[bytes]] = []
        if folder is None:
            return
        folder.mkdir(parents=True, exist_ok=True)
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        for name, pid in pids.items():
            if name in ("postgres", "simulator"):
                continue
            self.running.append(subprocess.Popen(
                [spy, "record", "--pid", str(pid), "--subprocesses", "--rate", "250", "--format", "raw",
                 "--output", str(folder / f"{label}_{name}.txt"), "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def stop(self) -> None:
        for spy in self.running:
            spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        for spy in self.running:
            spy.wait(60)


def run_phase(topology: Topology, api: AirflowApi, shape: Shape, *, prefix: str, latency: float, timeout: float,
              during: Any = None, profile: Path | None = None) -> dict[str, Any]:
    dag_ids = shape.dag_ids(prefix)
    for dag_id in dag_ids:
        api.unpause(dag_id)
    memory = MemoryPeaks(topology)
    memory.start()
    pids = topology.pids()
    profilers = Profilers(profile, pids, f"{prefix}_{shape.key}")
    cpu_before = cpu_seconds(pids)
    t0_wall, t0 = time.time(), time.monotonic()
    with ThreadPoolExecutor(len(dag_ids)) as pool:
        runs = dict(zip(dag_ids, pool.map(api.trigger, dag_ids)))
    extra = during(t0_wall) if during else {}
    with ThreadPoolExecutor(len(dag_ids)) as pool:
        states = dict(zip(dag_ids, pool.map(lambda d: api.wait(d, runs[d], timeout), dag_ids)))
    cpu = cpu_used(cpu_before, cpu_seconds(pids))
    profilers.stop()
    peaks = memory.stop()
    rows = task_rows(topology.metadata_url, runs)
    agents = [r for r in rows if r["task_id"] != SUMMARY and not r["task_id"].endswith("__items")]
    ends = [r["end_date"].timestamp() for r in agents if r["end_date"] is not None]
    wall = (max(ends) - t0_wall) if ends else time.monotonic() - t0
    entries = requests_since(topology.simulator_log, t0_wall, prefix)
    served = admitted(entries)
    bound = latency * shape.layers * shape.waves
    phase = {
        "shape": shape.key, "title": shape.title, "variant": "agents" if prefix == "scale" else "PythonOperator",
        "runs": states, "wall_s": round(wall, 1), "lower_bound_s": bound, "x_bound": round(wall / bound, 2),
        "requests": len(served), "requests_expected": shape.requests,
        "requests_ok": sum(1 for e in served if e.get("status") == 200),
        "rate_limited_429": sum(1 for e in entries if e.get("limited_by")),
        "peak_in_flight": peak_in_flight(served),
        "start_latency_s": percentiles([e["ts_start"] - t0_wall for e in served]),
        "task_states": dict(sorted(Counter(r["state"] or "none" for r in agents).items())),
        "task_retries": sum(1 for r in agents if (r["try_number"] or 1) > 1),
        "worker_processes": worker_processes(topology.metadata_url, runs, agents),
        "pss_mib": peaks, "cpu_s": cpu, "cpu_total_s": round(sum(c["tree"] for c in cpu.values()), 1),
        "load_1m_end": round(os.getloadavg()[0], 2),
        "requests_per_agent": round(len(served) / shape.requests, 3),
        "faults_injected": sum(1 for e in served if e.get("fault")),
        "timeline_s": timeline(topology, runs, agents, served, t0_wall,
                               [r for r in rows if r["task_id"] == SUMMARY]),
        "_runs": runs, "_entries": entries, **extra,
    }
    phase["cap_held"] = phase["peak_in_flight"] <= shape.max_parallel
    return phase


def timeline(topology: Topology, runs: dict[str, str], agents: list[dict[str, Any]], served: list[dict[str, Any]],
             t0_wall: float, summaries: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Where an agent's time goes, each stage as percentiles of seconds after the first trigger: deferred by
    the scheduler (its task's start), started by a trigger runner (its trigger log's first line), reserved in
    the ledger (after the rate limiter admitted it), sent to and answered by the simulator, settled in the
    ledger, the task's end in the metadata DB, and the run's end (its ``workflow_summary`` task's end)."""
    calls = query(topology.governance_url, "SELECT created_at, settled_at FROM erp_ledger_calls "
                  "WHERE dag_id = ANY(:dags) AND run_id = ANY(:runs)", _of_runs(runs))
    stamps = {
        "deferred": [r["start_date"].timestamp() for r in agents if r["start_date"] is not None],
        "started": trigger_starts(topology.task_logs, runs),
        "reserved": [float(c["created_at"]) for c in calls if c["created_at"] is not None],
        "sent": [e["ts_start"] for e in served],
        "answered": [e["ts_end"] for e in served if e.get("ts_end")],
        "settled": [float(c["settled_at"]) for c in calls if c["settled_at"] is not None],
        "ended": [r["end_date"].timestamp() for r in agents if r["end_date"] is not None],
        "run ended": [r["end_date"].timestamp() for r in summaries if r["end_date"] is not None],
    }
    return {stage: percentiles([t - t0_wall for t in values]) for stage, values in stamps.items()}


def trigger_starts(task_logs: Path, runs: dict[str, str]) -> list[float]:
    """When a trigger runner started each of the runs' triggers: the first line of each trigger log (a
    mapped task's logs are one folder deeper, under ``map_index=N``)."""
    starts = []
    for dag_id, run_id in runs.items():
        for path in (task_logs / f"dag_id={dag_id}" / f"run_id={run_id}").glob("task_id=*/**/attempt=*.log.trigger.*.log"):
            with path.open() as log:
                first = log.readline()
            try:
                stamp = json.loads(first)["timestamp"]
            except (ValueError, KeyError):
                continue
            starts.append(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())
    return starts


def add_floor(phase: dict[str, Any], topology: Topology, shape: Shape) -> None:
    """The shape's requests once more with the bare SDK, as many processes as triggerers (bench/floor.py)."""
    time.sleep(1.0)  # the shape's last connections close
    floor = sdk_floor(topology.simulator_url(), SIM_KEY, requests=shape.requests, layers=shape.layers,
                      processes=topology.floor_processes())
    phase["floor"] = floor.as_dict()
    phase["x_floor"] = round(phase["wall_s"] / floor.wall_s, 2)


def limit_figures(phase: dict[str, Any], limits: RateLimitConfig, latency: float) -> dict[str, Any]:
    """Rejections, the busiest 60 s window over the limit, utilization while saturated and wall time over the
    ideal, from the simulator's own log (bench/ratelimit.py's analysis, on the deployment's requests)."""
    from bench.ratelimit import analyse

    figures = analyse(phase["_entries"], limits.requests_per_minute or 10**9, limits.tokens_per_minute or 10**12,
                      60.0, latency)
    figures["wall_over_ideal"] = round(phase["wall_s"] / figures["ideal_wall_s"], 2) if figures["ideal_wall_s"] else None
    return figures


def budget_figures(phase: dict[str, Any], shape: Shape, governance_url: str, metadata_url: str) -> dict[str, Any]:
    """The budget, what the ledger settled against it, agents refused, the headroom left idle and ledger
    operations per second (a reserve and a settle or release per request, one refused reserve per refusal)."""
    budget = round(budget_usd(shape) * 1e6)
    calls = ledger_calls(governance_url, phase["_runs"])
    spent = sum(int(c["actual_micros"] or 0) for c in calls if c["state"] == "settled")
    rows = task_rows(metadata_url, phase["_runs"])
    refused = sum(1 for r in rows if r["task_id"] != SUMMARY and r["state"] in ("failed", "upstream_failed"))
    return {"budget_usd": budget / 1e6, "enforced": shape.enforce_budget, "settled_usd": spent / 1e6,
            "within_budget": spent <= budget,
            "agents_refused": refused, "agents_succeeded": sum(1 for r in rows if r["task_id"] != SUMMARY and r["state"] == "success"),
            "idle_headroom": round((budget - spent) / budget, 4),
            "ledger_ops_per_s": round((2 * len(calls) + refused) / phase["wall_s"], 1) if phase["wall_s"] else None}


# -- faults at scale (cluster) ------------------------------------------------------------------------


def held_calls(governance_url: str) -> int:
    """Model calls in flight: the ledger holds each one's reservation from just before it is sent until
    it is settled (the simulator logs a request only once it has been answered)."""
    from sqlalchemy.exc import ProgrammingError

    try:
        [row] = query(governance_url, "SELECT count(*) AS held FROM erp_ledger_calls WHERE state = :state",
                      {"state": "held"})
    except ProgrammingError:  # no table yet: the first agent creates the ledger's tables
        return 0
    return int(row["held"])


def inject_faults(topology: OnCluster, requests: int, share: float = 0.4, timeout: float = 120) -> Any:
    """Once ``share`` of the phase's ``requests`` are in flight: kill -9 worker-1, then restart the
    triggerer that started more of the phase's agents (a triggerer claims up to 250 new triggers per
    loop turn, so a small burst can go whole to one of them). In flight, not logged by the simulator:
    a burst now starts within half a second, so by the time 40 % of its requests had been answered
    (and logged) the rest were being answered too, and the restart hit no agent."""

    def during(t0_wall: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        wanted = int(requests * share)
        while held_calls(topology.governance_url) < wanted and time.monotonic() < deadline:
            time.sleep(0.2)
        in_flight = held_calls(topology.governance_url)
        killed = topology.cluster.kill("worker-1")
        triggerer = busiest_triggerer(topology, t0_wall)
        # SIGTERM, then SIGKILL after 30 s if it is still there: a trigger cancelled in between releases
        # its reservation; one still in flight when the process dies leaves a hold that expires.
        stop_began = time.time()
        processes.stop(topology.cluster.layout, triggerer)
        stop_ended = time.time()
        topology.cluster.restart(triggerer)  # nothing left to stop: starts it and waits for its heartbeat
        return {"faults": {"worker_killed_pid": killed, "triggerer_restarted": triggerer,
                           "triggerer_stop_began": stop_began,
                           "triggerer_stop_ended": stop_ended, "triggerer_stop_s": round(stop_ended - stop_began, 1),
                           "triggerer_back_after_s": round(time.time() - stop_began, 1),
                           "requests_in_flight_at_faults": in_flight,
                           "requests_answered_before": len(requests_since(topology.simulator_log, t0_wall, "scale"))}}

    return during


def busiest_triggerer(topology: OnCluster, since: float) -> str:
    """The triggerer whose supervisor built more trigger workloads since ``since`` (its log's lines)."""
    from erp_agents.stack.cluster_settings import TRIGGERERS

    def started(name: str) -> int:
        count = 0
        for line in topology.cluster.layout.log_of(name).read_text(errors="replace").splitlines():
            if "Start from trigger enabled" not in line:
                continue
            try:
                at = datetime.fromisoformat(line.split(" ", 1)[0].replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
            count += at >= since
        return count

    counts = {name: started(name) for name in TRIGGERERS}
    return max(counts, key=lambda name: counts[name])


def ledger_calls(governance_url: str, runs: dict[str, str]) -> list[dict[str, Any]]:
    return query(governance_url, "SELECT dag_id, task_id, state, actual_micros, expires_at FROM erp_ledger_calls "
                 "WHERE dag_id = ANY(:dags) AND run_id = ANY(:runs)", _of_runs(runs))


def expire_and_count_reserved(governance_url: str, runs: dict[str, str], holds: list[dict[str, Any]]) -> int:
    """Let the holds of dead holders expire (the ledger's own expiry, run at their expiry time instead of
    waiting the TTL), then the money still reserved on the runs' accounts (micro-USD; 0 = nothing leaked)."""
    from erp_agents.costs.ledger import Ledger

    ledger = Ledger(governance_url)
    if holds:
        while ledger._expire(max(float(h["expires_at"]) for h in holds) + 1):
            pass
    [row] = query(governance_url, "SELECT coalesce(sum(reserved_micros), 0) AS reserved FROM erp_ledger_accounts "
                  "WHERE key = ANY(:keys) OR key LIKE ANY(:agents)",
                  {"keys": [f"run:{dag}/{run}" for dag, run in runs.items()],
                   "agents": [f"agent:{dag}/{run}/%" for dag, run in runs.items()]})
    return int(row["reserved"] or 0)


def check_faults(phase: dict[str, Any], governance_url: str) -> dict[str, Any]:
    """Every run completed, no 429, nothing held, no agent charged more often than it was served, and every
    served request the ledger did not charge was in flight when the triggerer stopped."""
    entries, faults = phase["_entries"], phase["faults"]
    stop_began, stop_ended = faults["triggerer_stop_began"], faults["triggerer_stop_ended"]
    served: dict[tuple[str, str], int] = {}
    for e in entries:
        if e.get("status") == 200 and (m := MARKER.search(str(e.get("request")))):
            served[(m.group(1), m.group(2))] = served.get((m.group(1), m.group(2)), 0) + 1
    charged: dict[tuple[str, str], int] = {}
    calls = ledger_calls(governance_url, phase["_runs"])
    for c in calls:
        if c["state"] == "settled":
            key = (c["dag_id"], c["task_id"].rsplit(".", 1)[-1])
            charged[key] = charged.get(key, 0) + 1
    over = {f"{d}/{a}": (n, served.get((d, a), 0)) for (d, a), n in charged.items() if n > served.get((d, a), 0)}
    in_flight_during_stop = sum(1 for e in entries if e.get("status") == 200
                                and e["ts_start"] <= stop_ended and e["ts_end"] >= stop_began)
    uncharged = sum(served.values()) - sum(charged.values())
    holds = [c for c in calls if c["state"] == "held"]
    result = {
        "runs_succeeded": all(s == "success" for s in phase["runs"].values()),
        "rate_limited_429": phase["rate_limited_429"],
        "held_after_run": len(holds),
        "calls_by_state": dict(Counter(c["state"] for c in calls)),
        "reserved_after_expiry_micros": expire_and_count_reserved(governance_url, phase["_runs"], holds),
        "agents_charged_more_than_served": over,
        "served_not_charged": uncharged, "in_flight_while_triggerer_stopped": in_flight_during_stop,
        "agents_run_twice": sum(1 for n in served.values() if n > 1),
        "triggerer_stop_s": faults["triggerer_stop_s"],
    }
    # A hold is left only by a request the stopped triggerer had in flight; it expires like any dead holder's.
    result["ok"] = (result["runs_succeeded"] and not result["rate_limited_429"]
                    and result["reserved_after_expiry_micros"] == 0 and not over
                    and len(holds) <= in_flight_during_stop and 0 <= uncharged <= in_flight_during_stop)
    return result


# -- main ---------------------------------------------------------------------------------------------


def print_table(phases: list[dict[str, Any]], topology: str) -> None:
    print(f"\nbench/scale.py on the {topology} topology")
    head = (f"{'shape':<6}{'variant':<15}{'wall s':>8}{'bound s':>9}{'x bound':>9}{'floor s':>9}{'x floor':>9}"
            f"{'in flight':>11}{'requests':>12}"
            f"{'start p50/p90/p99 s':>22}{'retries':>9}{'worker procs':>14}  peak PSS MiB")
    print(head)
    print("-" * len(head))
    for p in phases:
        lat = p["start_latency_s"]
        starts = f"{lat.get('p50', 0)}/{lat.get('p90', 0)}/{lat.get('p99', 0)}"
        mem = ", ".join(f"{k} {v}" for k, v in p["pss_mib"].items())
        floor = p.get("floor", {}).get("wall_s", "-")
        print(f"{p['shape']:<6}{p['variant']:<15}{p['wall_s']:>8}{p['lower_bound_s']:>9}{p['x_bound']:>9}"
              f"{floor:>9}{p.get('x_floor', '-'):>9}{p['peak_in_flight']:>11}{str(p['requests']) + '/' + str(p['requests_expected']):>12}{starts:>22}"
              f"{p['task_retries']:>9}{p['worker_processes']:>14}  {mem}")
    print("\nCPU seconds over each phase, whole process tree (own: the root process; a triggerer's is its supervisor)")
    for p in phases:
        cells = sorted(p["cpu_s"].items(), key=lambda kv: -kv[1]["tree"])
        print(f"{p['shape']:<6}{p['variant']:<15}total {p['cpu_total_s']:>6}  "
              + ", ".join(f"{name} {c['tree']} (own {c['own']})" for name, c in cells if c["tree"] >= 0.1))
    print("\ntimeline, p50/p90/max seconds after the first trigger")
    stages = ("deferred", "started", "reserved", "sent", "answered", "settled", "ended", "run ended")
    print(f"{'shape':<6}{'variant':<15}" + "".join(f"{s:>18}" for s in stages))
    for p in phases:
        cells = [p["timeline_s"].get(s, {}) for s in stages]
        print(f"{p['shape']:<6}{p['variant']:<15}"
              + "".join(f"{str(c.get('p50', '-')) + '/' + str(c.get('p90', '-')) + '/' + str(c.get('max', '-')):>18}" for c in cells))
    for p in phases:
        if set(p["runs"].values()) != {"success"} or p["rate_limited_429"]:
            print(f"  shape {p['shape']} ({p['variant']}): runs {p['runs']}, tasks {p['task_states']}, "
                  f"429s {p['rate_limited_429']}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topology", choices=("embedded", "cluster"), default="embedded")
    parser.add_argument("--shapes", default="a,b,c,d,e")
    parser.add_argument("--baseline", default="", help="shapes also run as PythonOperator tasks, e.g. a")
    parser.add_argument("--latency", type=float, default=5.0)
    parser.add_argument("--faults", action="store_true", help="cluster: shape (a) with a worker killed and a triggerer restarted")
    parser.add_argument("--limits", default="", help="RPM,TPM,CONCURRENT for the engine and the simulator (shape r), "
                                                     "e.g. 300,60000,50; default: far above the load")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of requests the simulator fails")
    parser.add_argument("--fault-kinds", default="429,500,503,drop,malformed", help="with --fault-rate")
    parser.add_argument("--max-retries", type=int, help="the engine's default in-call retries (default: RetryPolicy's 3)")
    parser.add_argument("--profile", metavar="DIR", help="py-spy every component during each phase; collapsed stacks "
                                                         "(flamegraph input) go to DIR/<shape>_<component>.txt")
    parser.add_argument("--no-floor", action="store_true", help="skip the bare-SDK floor measured after each shape")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    parser.add_argument("--json", help="where to write the figures (default bench/results/scale_<topology>.json)")
    args = parser.parse_args(argv)
    if args.faults and args.topology != "cluster":
        parser.error("--faults needs --topology cluster")
    keys = args.shapes.split(",")
    if ("r" in keys) != bool(args.limits) or ("r" in keys and len(keys) > 1):
        parser.error("shape r runs alone and with --limits (binding limits apply to the whole deployment)")
    return args


def limits_of(text_: str) -> RateLimitConfig:
    if not text_:
        return UNBOUND
    rpm, tpm, concurrent = (int(v) for v in text_.split(","))
    return RateLimitConfig(requests_per_minute=rpm, requests_per_hour=None, requests_per_day=None,
                           tokens_per_minute=tpm, concurrent_requests=concurrent)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stopped bench still stops its deployment
    shapes = [SHAPES[k] for k in args.shapes.split(",") if k]
    if args.faults and SHAPES["a"] not in shapes:
        shapes.insert(0, SHAPES["a"])
    baselines = [SHAPES[k] for k in args.baseline.split(",") if k]
    work = Path(tempfile.mkdtemp(prefix=f"erp-scale-{args.topology}-"))
    dags = work / "dags"
    invoices = write_erp_data(work / "erp_data")
    limits = limits_of(args.limits)
    policy = {} if args.max_retries is None else {"default_retry_policy": RetryPolicy(max_retries=args.max_retries)}
    engine = EngineConfig(rate_limit_config=limits, **policy)
    faults = {"fault_rate": args.fault_rate, "fault_kinds": args.fault_kinds} if args.fault_rate else None
    env = {"ERP_DATA_DIR": str(work / "erp_data")}
    write_dags_folder(dags, shapes, baselines, invoices, engine if args.topology == "embedded" else None)
    print(f"work folder {work}", flush=True)
    began = time.monotonic()
    if args.topology == "cluster":
        reset_cluster_databases()
        topology: Topology = OnCluster(work, dags, args.latency, env, engine, faults)
    else:
        topology = Embedded(work, dags, args.latency, env, limits, faults)
    print(f"{topology.name} up after {time.monotonic() - began:.0f} s; api {topology.api_url}", flush=True)
    phases: list[dict[str, Any]] = []
    checks: dict[str, Any] = {}
    try:
        api = AirflowApi(topology.api_url, *topology.login())
        try:
            everything = [d for s in shapes for d in s.dag_ids()] + [d for s in baselines for d in s.dag_ids("plain")]
            wait_for_dags(api, everything, timeout=300)
            for shape in shapes:
                killing = args.faults and shape.key == "a"
                print(f"shape {shape.key}: {shape.title}{' with faults' if killing else ''} ...", flush=True)
                phase = run_phase(topology, api, shape, prefix="scale", latency=args.latency, timeout=args.timeout,
                                  during=inject_faults(topology, shape.requests) if killing else None,  # type: ignore[arg-type]
                                  profile=Path(args.profile) if args.profile else None)
                if killing:
                    checks = check_faults(phase, topology.governance_url)
                    print(f"  faults: {json.dumps(checks)}", flush=True)
                if shape.key == "r":
                    phase["limits"] = limit_figures(phase, limits, args.latency)
                    print(f"  limits: {json.dumps(phase['limits'])}", flush=True)
                if shape.budget_agents:
                    phase["budget"] = budget_figures(phase, shape, topology.governance_url, topology.metadata_url)
                    print(f"  budget: {json.dumps(phase['budget'])}", flush=True)
                if shape.key in FLOOR_SHAPES and not args.no_floor:
                    add_floor(phase, topology, shape)
                phases.append(phase)
                print(f"  {phase['wall_s']} s ({phase['x_bound']}x the bound, {phase.get('x_floor', '-')}x the floor), "
                      f"peak {phase['peak_in_flight']} in flight, runs {set(phase['runs'].values())}, "
                      f"CPU {phase['cpu_total_s']} s", flush=True)
            for shape in baselines:
                print(f"shape {shape.key} as PythonOperator tasks ...", flush=True)
                phases.append(run_phase(topology, api, shape, prefix="plain", latency=args.latency, timeout=args.timeout))
                print(f"  {phases[-1]['wall_s']} s", flush=True)
        finally:
            api.close()
    finally:
        topology.down()
    print_table(phases, topology.name)
    for p in phases:
        p.pop("_entries", None), p.pop("_runs", None)
    figures = {"topology": topology.name, "latency_s": args.latency, "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "cpus": os.cpu_count(), "limits": limits.model_dump(), "fault_rate": args.fault_rate,
               "max_retries": engine.default_retry_policy.max_retries,
               "phases": phases, "faults": checks or None}
    out = Path(args.json) if args.json else ROOT / "bench" / "results" / f"scale_{topology.name}.json"
    out.write_text(json.dumps(figures, indent=2, default=str))
    print(f"wrote {out}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    failed = [p for p in phases if p["rate_limited_429"] or not p.get("cap_held", True) or (
        not p["shape"] == "m" and set(p["runs"].values()) != {"success"}) or (
        p.get("budget", {}).get("enforced") and not p["budget"]["within_budget"])]
    return 1 if failed or (checks and not checks["ok"]) else 0


def wait_for_dags(api: AirflowApi, dag_ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    missing = list(dag_ids)
    while missing:
        missing = [d for d in missing if api.dag(d) is None]
        if missing and time.monotonic() > deadline:
            raise TimeoutError(f"DAGs not parsed after {timeout:.0f} s: {missing[:5]} ...")
        if missing:
            time.sleep(2)
    print(f"{len(dag_ids)} DAGs parsed", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
