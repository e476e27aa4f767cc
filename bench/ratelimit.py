#!/usr/bin/env python
"""Rate-limit benchmark: store throughput per backend, and agents against a server that enforces limits.

Run from the repo root::

    python bench/ratelimit.py [--agents 600] [--rpm 300] [--tpm 60000] [--concurrent 50] [--window 60]
                              [--latency 0.5] [--margin 1.0] [--seconds 5] [--processes 2] [--backend sql|redis]
                              [--skip-throughput] [--skip-agents]

1. Acquisitions per second each store sustains (SQLite, PostgreSQL, Redis): ``--processes`` OS processes,
   each a RateLimiter with 64 coroutines acquiring non-binding request and token tiers for ``--seconds``.
2. ``--agents`` agents (one chat completion each, prompt of ~100 tokens, max_tokens 100) against the LLM
   simulator enforcing the same limits per key, exact sliding windows of ``--window`` seconds (limits scale
   with it: ``--window 10`` is a quick run), once through the limiter and once without (the baseline
   retries after each 429 as the server says). From the simulator's own log it prints: requests rejected
   for rate reasons, the busiest window over the limit, utilization while saturated (mean share of the
   binding limit used in consecutive windows from the first admission, the last window, where demand
   ran out, left out) and wall time over the ideal. Results go to bench/results/ratelimit.json.
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
import math  # noqa: E402
import multiprocessing  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402

from erp_agents.limits.estimate import estimate_prompt_tokens  # noqa: E402
from erp_agents.limits.feedback import retry_after  # noqa: E402
from erp_agents.limits.limiter import RateLimiter  # noqa: E402
from erp_agents.limits.tiers import Tier  # noqa: E402

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/erp_limits_bench"
REDIS_URL = "redis://127.0.0.1:6379/5"
PROMPT = " ".join(f"item{i} amount {i * 7} posted" for i in range(30))  # plain words: every tokenizer agrees
MAX_TOKENS = 100


def make_backend(kind: str, url: str, namespace: str, margin: float) -> Any:
    if kind == "redis":
        from erp_agents.limits.redis_backend import RedisBackend

        return RedisBackend(url, namespace=namespace, margin_s=margin)
    from erp_agents.limits.sql_backend import SqlBackend

    return SqlBackend(url, namespace=namespace, margin_s=margin)


def ensure_pg_database() -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = 'erp_limits_bench'")).first():
            conn.execute(sa.text("CREATE DATABASE erp_limits_bench"))
    engine.dispose()


# -- 1. store throughput ----------------------------------------------------------------------------
def _throughput_worker(kind: str, url: str, namespace: str, seconds: float, out: Any, index: int) -> None:
    if kind == "sql":
        from erp_agents.limits.sql_backend import make_engine

        make_engine(url).dispose(close=False)  # a forked child must not share the parent's connections
    limiter = RateLimiter(make_backend(kind, url, namespace, 1.0))
    tiers = (Tier("provider:bench", "requests", 10**9, 60.0, "rpm"), Tier("provider:bench", "tokens", 10**12, 60.0, "tpm"))

    async def main() -> int:
        end = time.monotonic() + seconds
        count = 0

        async def one() -> None:
            nonlocal count
            while time.monotonic() < end:
                await limiter.acquire(tiers, tokens=100, priority=5, holder="bench")
                count += 1

        await asyncio.gather(*(one() for _ in range(64)))
        return count

    out[index] = asyncio.run(main())


def throughput(kind: str, url: str, seconds: float, processes: int) -> float:
    namespace = f"bench{uuid.uuid4().hex[:6]}"
    make_backend(kind, url, namespace, 1.0).close()  # tables
    ctx = multiprocessing.get_context("fork")
    out = ctx.Array("l", processes)
    procs = [ctx.Process(target=_throughput_worker, args=(kind, url, namespace, seconds, out, i)) for i in range(processes)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return sum(out) / seconds


# -- 2. agents against the simulator ------------------------------------------------------------------
async def run_agents(base_url: str, agents: int, limiter: RateLimiter | None, tiers: tuple[Tier, ...]) -> dict[str, Any]:
    messages = [{"role": "user", "content": PROMPT}]
    estimate = estimate_prompt_tokens(messages, "gpt-4o-mini")
    waits: list[float] = []
    retries = 0
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits,
                                 headers={"Authorization": "Bearer bench-key"}) as client:

        async def agent(i: int) -> None:
            nonlocal retries
            while True:
                lease = None
                if limiter is not None:
                    lease = await limiter.acquire(tiers, tokens=estimate + MAX_TOKENS, priority=1 + i % 10,
                                                  holder=f"agent{i}")
                    waits.append(lease.wait_s)
                response = await client.post("/chat/completions", json={
                    "model": "gpt-4o-mini", "messages": messages, "max_tokens": MAX_TOKENS})
                if response.status_code == 429:
                    retries += 1
                    if lease is not None:
                        await limiter.release(lease, sent=True)  # type: ignore[union-attr]
                    await asyncio.sleep(retry_after(response.headers) or 1.0)
                    continue
                response.raise_for_status()
                if lease is not None:
                    counted = response.json()["usage"]["prompt_tokens"] + MAX_TOKENS  # what the server counts
                    await limiter.settle(lease, counted)  # type: ignore[union-attr]
                return

        started = time.monotonic()
        await asyncio.gather(*(agent(i) for i in range(agents)))
        wall = time.monotonic() - started
    return {"wall_s": wall, "client_429": retries, "estimate": estimate,
            "mean_wait_s": sum(waits) / len(waits) if waits else 0.0}


def analyse(log: list[dict[str, Any]], rpm: int, tpm: int, window: float, latency: float) -> dict[str, Any]:
    admitted = sorted((e["ts_start"], e["tokens_counted"]) for e in log if e.get("admitted"))
    rejected = sum(1 for e in log if e.get("status") == 429 and e.get("limited_by"))
    by_reason: dict[str, int] = {}
    for e in log:
        if e.get("status") == 429 and e.get("limited_by"):
            by_reason[e["limited_by"]] = by_reason.get(e["limited_by"], 0) + 1
    busiest_r = busiest_t = 0
    j = 0
    tokens_in = 0
    for i, (start, tok) in enumerate(admitted):  # windows starting at each admission
        while j < len(admitted) and admitted[j][0] < start + window:
            tokens_in += admitted[j][1]
            j += 1
        busiest_r, busiest_t = max(busiest_r, j - i), max(busiest_t, tokens_in)
        tokens_in -= tok
    n, total_tokens = len(admitted), sum(t for _, t in admitted)
    # windows of the server's length from the first admission; the last one (demand ran out) is left out
    full = int((admitted[-1][0] - admitted[0][0]) // window) if admitted else 0
    shares = []
    for k in range(full):
        lo, hi = admitted[0][0] + k * window, admitted[0][0] + (k + 1) * window
        inside = [tok for t, tok in admitted if lo <= t < hi]
        shares.append(max(len(inside) / rpm, sum(inside) / tpm))
    utilization = sum(shares) / len(shares) if shares else float("nan")
    windows_needed = max(math.ceil(n / rpm), math.ceil(total_tokens / tpm))
    ideal = (windows_needed - 1) * window + latency
    return {"admitted": n, "server_rejections": rejected, "rejected_by": by_reason, "busiest_window_over_limit":
            round(max(busiest_r / rpm, busiest_t / tpm), 4), "utilization_saturated": round(utilization, 4),
            "tokens_per_request": round(total_tokens / n, 1) if n else 0, "ideal_wall_s": round(ideal, 2)}


def agents_phase(args: argparse.Namespace) -> dict[str, Any]:
    from include.llm_simulator.testing import running_simulator

    scale = args.window / 60.0
    rpm, tpm = max(1, round(args.rpm * scale)), max(1, round(args.tpm * scale))
    results: dict[str, Any] = {"limits_per_window": {"requests": rpm, "tokens": tpm, "concurrent": args.concurrent,
                                                     "window_s": args.window}}
    for phase in ("baseline", "limiter"):
        with running_simulator(latency=args.latency, rpm=rpm, tpm=tpm, window_seconds=args.window,
                               max_concurrent=args.concurrent) as sim:
            limiter, tiers = None, ()
            if phase == "limiter":
                url = REDIS_URL if args.backend == "redis" else PG_URL
                backend = make_backend(args.backend if args.backend == "redis" else "sql", url,
                                       f"agents{uuid.uuid4().hex[:6]}", args.margin)
                limiter = RateLimiter(backend, lease_s=60.0)
                tiers = (Tier("provider:sim", "requests", rpm, args.window, "rpm"),
                         Tier("provider:sim", "tokens", tpm, args.window, "tpm"),
                         Tier("provider:sim", "concurrency", args.concurrent, None, "concurrent"))
            run = asyncio.run(run_agents(sim.openai_base_url, args.agents, limiter, tiers))
            figures = analyse(sim.requests(), rpm, tpm, args.window, args.latency)
            figures.update(run)
            figures["wall_over_ideal"] = round(run["wall_s"] / figures["ideal_wall_s"], 3)
            results[phase] = figures
            print(f"{phase:9s} {json.dumps(figures)}", flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=600)
    parser.add_argument("--rpm", type=int, default=300)
    parser.add_argument("--tpm", type=int, default=60000)
    parser.add_argument("--concurrent", type=int, default=50)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--margin", type=float, default=2.0, help="seconds an entry counts past its window")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--backend", choices=["sql", "redis"], default="sql")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-agents", action="store_true")
    args = parser.parse_args()
    ensure_pg_database()
    results: dict[str, Any] = {"args": vars(args)}
    if not args.skip_throughput:
        with tempfile.TemporaryDirectory() as tmp:
            stores = {"sqlite": ("sql", f"sqlite:///{tmp}/bench.db"), "postgres": ("sql", PG_URL),
                      "redis": ("redis", REDIS_URL)}
            rates = {}
            for name, (kind, url) in stores.items():
                rates[name] = round(throughput(kind, url, args.seconds, args.processes))
                print(f"acquisitions/s {name:9s} {rates[name]:8d}", flush=True)
        results["acquisitions_per_s"] = rates
    if not args.skip_agents:
        results["agents"] = agents_phase(args)
    out = ROOT / "bench" / "results" / "ratelimit.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"written {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
