#!/usr/bin/env python
"""Budget benchmark: 500 simulated agents race for one run budget that pays for about 100 of them.

Run from the repo root::

    python bench/budget.py [--agents 500] [--covered 100] [--calls 2] [--latency-ms 20 80]
                           [--url postgresql+psycopg://postgres@127.0.0.1:5432/erp_ledger_test]

In one process, with no Airflow and no provider: every agent makes ``--calls`` model requests (a tool
round and a final answer) of gpt-4o-mini with a 1,500-token prompt and max_tokens 800. Each request
reserves its worst case on the agent, run and day accounts, "calls" the model (sleeps), draws real
usage (input as sent, 100-800 output tokens) and settles it; an agent refused by the budget stops.
The same agents then run with budgets off (the ledger only records charges) as the baseline.

Prints the budget, settled spend (must be <= budget), agents refused, wasted headroom (budget
minus spend, as a fraction of the budget; target <= 5 % plus one call) and ledger operations per
second; writes bench/results/budget.json. Exit status 1 if spend exceeded the budget.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (str(ROOT / "plugins"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402

import psycopg  # noqa: E402

from erp_agents.costs.ledger import Ledger  # noqa: E402
from erp_agents.costs.ledger_types import Account, BudgetExceededError, CallKey, ChargeDetail  # noqa: E402
from erp_agents.costs.pricing import TokenCounts, quote, worst_case_micros  # noqa: E402

MODEL, PROMPT, MAX_OUT = "gpt-4o-mini", 1500, 800
DAG = "bench_budget"


@dataclass
class Phase:
    name: str
    budget_micros: int | None
    spent_micros: int
    refused_agents: int
    completed_agents: int
    ledger_ops: int
    wall_s: float
    ops_per_s: float
    wasted_fraction: float | None
    one_call_fraction: float | None
    settle_ms_p50: float
    settle_ms_p95: float


def ensure_database(url: str) -> None:
    """Create the benchmark's database when it is missing (trust auth on the local server)."""
    name = url.rsplit("/", 1)[-1]
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')


async def race(ledger: Ledger, args: argparse.Namespace, budget: int | None, seed: int) -> Phase:
    run_id = f"bench_{uuid.uuid4().hex[:8]}"
    rng = random.Random(seed)
    worst = worst_case_micros(MODEL, "openai", None, PROMPT, MAX_OUT)
    run = [Account(f"run:{DAG}/{run_id}", budget, "run"), Account(f"day:{run_id}", budget * 10, "day")] if budget else []
    ops = refused = 0
    settle_s: list[float] = []

    async def agent(i: int) -> None:
        nonlocal ops, refused
        own = [Account(f"agent:{DAG}/{run_id}/a{i}", worst * args.calls * 2, "agent")] if budget else []
        for call in range(1, args.calls + 1):
            key = CallKey(DAG, run_id, f"a{i}", -1, 1, call)
            try:
                res = await ledger.reserve(key, [*own, *run], worst)
            except BudgetExceededError:
                ops += 1
                refused += 1
                return
            await asyncio.sleep(rng.uniform(*args.latency_ms) / 1000)
            used = TokenCounts(PROMPT + (call - 1) * MAX_OUT, rng.randint(100, MAX_OUT))
            price = quote(MODEL, used, provider_type="openai")
            t0 = time.perf_counter()
            await ledger.settle(res, price.micros, ChargeDetail(
                model=MODEL, provider="openai", module="Bench", input_tokens=used.input_tokens,
                output_tokens=used.output_tokens, price_source=price.source, price_date=price.price_date))
            settle_s.append(time.perf_counter() - t0)
            ops += 2

    started = time.perf_counter()
    await asyncio.gather(*(agent(i) for i in range(args.agents)))
    wall = time.perf_counter() - started
    spent = ledger.spend(dag_id=DAG, run_id=run_id).total_micros
    return Phase(
        name="budget" if budget else "budgets off", budget_micros=budget, spent_micros=spent,
        refused_agents=refused, completed_agents=args.agents - refused, ledger_ops=ops, wall_s=round(wall, 3),
        ops_per_s=round(ops / wall, 1),
        wasted_fraction=round((budget - spent) / budget, 4) if budget else None,
        one_call_fraction=round(worst / budget, 4) if budget else None,
        settle_ms_p50=round(statistics.median(settle_s) * 1000, 2),
        settle_ms_p95=round(statistics.quantiles(settle_s, n=20)[-1] * 1000, 2),
    )


def typical_agent_micros(calls: int) -> int:
    """Expected real cost of one agent: prompts as sent, outputs at their mean."""
    return sum(
        quote(MODEL, TokenCounts(PROMPT + c * MAX_OUT, (100 + MAX_OUT) // 2), provider_type="openai").micros
        for c in range(calls)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--covered", type=int, default=100, help="agents the budget pays for at typical cost")
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--latency-ms", type=float, nargs=2, default=(20.0, 80.0))
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/erp_ledger_test")
    args = parser.parse_args()
    if args.url.startswith("postgresql"):
        ensure_database(args.url)
    budget = typical_agent_micros(args.calls) * args.covered
    ledger = Ledger(args.url, wait_for_in_flight_s=120)
    phases = [asyncio.run(race(ledger, args, budget, 1)), asyncio.run(race(ledger, args, None, 1))]
    ledger.close()
    print(f"{args.agents} agents x {args.calls} calls, budget for ~{args.covered} agents; ledger {args.url.split('@')[-1]}")
    print(f"{'phase':<12} {'budget $':>10} {'spent $':>10} {'refused':>8} {'done':>6} {'wasted':>8} "
          f"{'1 call':>8} {'ops':>6} {'wall s':>7} {'ops/s':>8} {'settle ms p50/p95':>18}")
    for p in phases:
        print(f"{p.name:<12} {(p.budget_micros or 0) / 1e6:>10.6f} {p.spent_micros / 1e6:>10.6f} {p.refused_agents:>8} "
              f"{p.completed_agents:>6} {p.wasted_fraction if p.wasted_fraction is not None else '-':>8} "
              f"{p.one_call_fraction if p.one_call_fraction is not None else '-':>8} {p.ledger_ops:>6} "
              f"{p.wall_s:>7} {p.ops_per_s:>8} {f'{p.settle_ms_p50}/{p.settle_ms_p95}':>18}")
    within = phases[0].spent_micros <= budget
    print(f"spend <= budget: {within}; throughput with budgets / without: {phases[0].ops_per_s / phases[1].ops_per_s:.2f}")
    out = ROOT / "bench" / "results" / "budget.json"
    out.write_text(json.dumps({"args": {k: v for k, v in vars(args).items()}, "phases": [asdict(p) for p in phases]}, indent=2))
    return 0 if within else 1


if __name__ == "__main__":
    raise SystemExit(main())
