"""What one agent start and one model request cost in the triggerer's event loop.

N agents start at once on one asyncio loop, as N AgentTriggers do in a triggerer, through the real
code path: AgentTrigger -> run_agent -> default_registry().build -> AgentModelHook.model ->
GovernedModel (tokenizer estimate, price) -> pydantic-ai -> the LLM simulator (a real HTTP server in
its own process). No Airflow component runs: the connection comes from ``AIRFLOW_CONN_*``, and a
governor that admits everything stands in for the limiter and the ledger (they have benches of
their own), so what is measured is our CPU per agent.

Two phases in the same process, same agents, same simulator:

- **per agent**: the model, its SDK client and connection pool, the connection read and the tools
  are built again for every agent (the hook and registry caches are cleared at each start), as
  each trigger start did before the caches existed;
- **shared**: what the caches give: one client and pool per connection, tools built once.

Printed per phase: loop CPU per agent (CPU of the loop's thread / N), start spread (first to last
request reaching the governor; on one loop this is the sum of the starts' synchronous work), loop lag
(how late a 5 ms ticker wakes: max, p99, and count of stalls over 0.2 s, what the triggerer logs as
"async thread blocked"), wall time against the latency floor, and after/before ratios.

    python bench/trigger_cost.py                      # N=500, 5 s latency
    python bench/trigger_cost.py --agents 50 --latency 1
    python bench/trigger_cost.py --profile shared     # pyinstrument tree of that phase
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

from include.llm_simulator.testing import running_simulator  # noqa: E402

CONN_ID = "trigger_cost_sim"
API_KEY = "sk-trigger-cost-0123456789"
TICK_S = 0.005
BLOCKED_S = 0.2
RUN = {"schema_version": 1, "dag_id": "trigger_cost", "run_id": "bench", "task_id": "t", "params": {"quarter": "Q3"}}


@dataclass
class LoopLag:
    """How late a ticker wakes up: a blocked event loop delays every coroutine by the same amount."""

    lags: list[float] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            due = time.perf_counter() + TICK_S
            await asyncio.sleep(TICK_S)
            self.lags.append(max(0.0, time.perf_counter() - due))

    def summary(self) -> dict[str, float]:
        lags = sorted(self.lags) or [0.0]
        return {
            "lag_max_s": lags[-1],
            "lag_p99_s": lags[int(0.99 * (len(lags) - 1))],
            "stalls_over_0.2s": float(sum(1 for lag in lags if lag > BLOCKED_S)),
        }


class TimingGovernor:
    """Admits every request and notes when each reached it."""

    def __init__(self, seen: list[float]) -> None:
        self.seen = seen

    async def acquire(self, estimate: Any) -> None:
        self.seen.append(time.perf_counter())

    async def settle(self, permit: Any, cost: Any) -> None:
        return None

    async def release(self, permit: Any, error: BaseException) -> None:
        return None


def invocations(n: int) -> list[str]:
    """N planned agents of one workflow, each as the JSON its trigger is given."""
    from erp_agents.factory.plan import plan_workflow
    from erp_agents.spec.models import Agent, EngineConfig, LLMConfig, ProviderConfig, Workflow

    engine = EngineConfig(default_provider="sim", providers={"sim": ProviderConfig(type="openai", conn_id=CONN_ID)})
    agents = [
        Agent(name=f"agent_{i:04d}", module="Finance", llm_config=LLMConfig(model="gpt-4o-mini", max_tokens=50),
              prompt_template="Reconcile the ledger for {{ params.quarter }}, item " + str(i),
              tools=["finance.get_ledger_balance", "hr.get_headcount", "inventory.get_stock_levels"])
        for i in range(n)
    ]
    plan = plan_workflow(Workflow(name="trigger_cost", max_parallel_agents=n, agents=agents), engine)
    return [task.invocation.to_json() for task in plan.tasks]


def clear_shared() -> None:
    """Forget every per-process cache, so the next start builds everything again."""
    from erp_agents.hooks import model_hook
    from erp_agents.tools.registry import default_registry

    if hasattr(model_hook, "clear_model_cache"):
        model_hook.clear_model_cache()
    registry = default_registry()
    if hasattr(registry, "clear_cache"):
        registry.clear_cache()


async def run_phase(payloads: list[str], *, per_agent: bool) -> dict[str, float]:
    from erp_agents.triggers import runner
    from erp_agents.triggers.agent import AgentTrigger

    seen: list[float] = []
    runner.governor_for = lambda *a, **k: TimingGovernor(seen)  # type: ignore[assignment]
    clear_shared()

    async def one(payload: str) -> str:
        if per_agent:
            clear_shared()
        events = [e async for e in AgentTrigger(invocation=payload, end_in_triggerer=False, run=RUN,
                                                upstream_outputs={}).run()]
        return events[-1].payload["status"]

    lag, stop = LoopLag(), asyncio.Event()
    ticker = asyncio.create_task(lag.run(stop))
    await asyncio.sleep(TICK_S * 2)
    cpu0, loop_cpu0, t0 = time.process_time(), time.thread_time(), time.perf_counter()
    statuses = await asyncio.gather(*(one(p) for p in payloads))
    wall = time.perf_counter() - t0
    loop_cpu, cpu = time.thread_time() - loop_cpu0, time.process_time() - cpu0
    stop.set()
    await ticker
    failed = [s for s in statuses if s != "success"]
    if failed:
        raise SystemExit(f"{len(failed)} agents did not succeed: {failed[:3]}")
    n = len(payloads)
    return {
        "wall_s": wall,
        "start_spread_s": max(seen) - min(seen),
        "first_request_s": min(seen) - t0,
        "loop_cpu_ms_per_agent": 1000 * loop_cpu / n,
        "process_cpu_ms_per_agent": 1000 * cpu / n,
        **lag.summary(),
    }


def tokenizer_first_load_s() -> float:
    """The tokenizer is read once per process; this is what that first read costs."""
    from erp_agents.limits import estimate

    estimate._load_o200k.cache_clear()
    started = time.perf_counter()
    estimate.estimate_prompt_tokens("warm", "gpt-4o-mini")
    return time.perf_counter() - started


def show(name: str, figures: dict[str, float]) -> None:
    print(f"{name:>10}: " + "  ".join(f"{k}={v:.3f}" for k, v in figures.items()))


async def main_async(args: argparse.Namespace) -> None:
    payloads = invocations(args.agents)
    await run_phase(payloads[:5], per_agent=False)  # imports and first-use work, counted in neither phase
    results: dict[str, dict[str, float]] = {}
    for phase in ("per agent", "shared"):
        profiler = None
        if args.profile and phase.replace(" ", "-") == args.profile:
            from pyinstrument import Profiler

            profiler = Profiler(async_mode="disabled", interval=0.002)
            profiler.start()
        results[phase] = await run_phase(payloads, per_agent=phase == "per agent")
        if profiler is not None:
            profiler.stop()
            print(profiler.output_text(unicode=False, color=False, show_all=False, flat=args.flat))
        show(phase, results[phase])
    before, after = results["per agent"], results["shared"]
    print(f"\nN={args.agents} agents, latency {args.latency:g} s (floor), ratios shared / per agent:")
    for key in ("loop_cpu_ms_per_agent", "process_cpu_ms_per_agent", "start_spread_s", "lag_max_s", "wall_s"):
        print(f"  {key:<26} {before[key]:9.3f} -> {after[key]:9.3f}   x{after[key] / max(before[key], 1e-9):.2f}")
    print(f"  {'wall / latency floor':<26} {before['wall_s'] / args.latency:9.2f} -> {after['wall_s'] / args.latency:9.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--latency", type=float, default=5.0)
    parser.add_argument("--profile", choices=["per-agent", "shared"], default=None,
                        help="print a pyinstrument profile of that phase")
    parser.add_argument("--flat", action="store_true", help="the profile as a flat list of functions by own time")
    args = parser.parse_args()
    print(f"tokenizer first load: {tokenizer_first_load_s():.3f} s (once per process)")
    with running_simulator(latency=args.latency, api_key=API_KEY) as sim:
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(
            {"conn_type": "openai", "host": sim.openai_base_url, "password": API_KEY})
        asyncio.run(main_async(args))
        print(f"simulator served {len(sim.requests())} requests")


if __name__ == "__main__":
    main()
