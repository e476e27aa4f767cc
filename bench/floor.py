"""The physical floor of a shape on this machine: the same requests with the bare OpenAI SDK.

What the latency bound leaves out is what sending N requests costs the client and the simulator on
this host's cores. This measures it in the run that measures us: ``processes`` OS processes (one per
triggerer), each with the SDK on the same HTTP pools our model hook uses (``POOL_SHARDS`` pools of
``POOL_LIMITS``), send their share of the requests in one ``asyncio.gather`` per layer, against the
same simulator at the same latency. No Airflow, no pydantic-ai, no limiter or ledger: a lower bound
for any client, not a competitor. Prompts carry a ``[floor/...]`` marker, so the simulator log keeps
these requests apart from the shapes'.

    python bench/floor.py --requests 2000 --processes 2     # starts its own simulator, 5 s latency
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
import multiprocessing  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

MODEL = "gpt-4o-mini"


@dataclass(frozen=True)
class Floor:
    wall_s: float  # first request sent to the last answer read, over all processes
    cpu_s: float  # CPU of the client processes over that time
    requests: int
    processes: int

    def as_dict(self) -> dict[str, Any]:
        return {"wall_s": round(self.wall_s, 2), "client_cpu_s": round(self.cpu_s, 2), "requests": self.requests,
                "processes": self.processes}


async def _send(base_url: str, api_key: str, count: int, layers: int, tag: str, ready: Any, go: Any) -> tuple[float, float, float]:
    import openai

    from erp_agents.hooks.model_hook import POOL_LIMITS, POOL_SHARDS

    clients = [openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0,
                                  http_client=openai.DefaultAsyncHttpxClient(limits=POOL_LIMITS, timeout=120))
               for _ in range(POOL_SHARDS)]
    per_layer = max(count // layers, 1)

    async def one(i: int) -> None:
        await clients[i % POOL_SHARDS].chat.completions.create(
            model=MODEL, max_tokens=50, messages=[{"role": "user", "content": f"[floor/{tag}_{i}] Review invoice {i}."}])

    ready.set()
    go.wait()
    started, cpu0 = time.time(), time.process_time()
    for layer in range(layers):
        await asyncio.gather(*(one(layer * per_layer + i) for i in range(per_layer)))
    ended = time.time()
    for client in clients:
        await client.close()
    return started, ended, time.process_time() - cpu0


def _child(base_url: str, api_key: str, count: int, layers: int, tag: str, ready: Any, go: Any, out: Any) -> None:
    import logging

    logging.disable(logging.INFO)  # no line per request: the floor measures the requests only
    out.put(asyncio.run(_send(base_url, api_key, count, layers, tag, ready, go)))


def sdk_floor(base_url: str, api_key: str, *, requests: int, layers: int = 1, processes: int = 1) -> Floor:
    """``requests`` chat completions split over ``processes``, ``layers`` waves one after the other."""
    ctx = multiprocessing.get_context("spawn")  # no inherited event loop, pools or threads
    go, out = ctx.Event(), ctx.Queue()
    shares = [requests // processes + (1 if p < requests % processes else 0) for p in range(processes)]
    readies, children = [], []
    for p, share in enumerate(shares):
        ready = ctx.Event()
        child = ctx.Process(target=_child, args=(base_url, api_key, share, layers, f"p{p}", ready, go, out), daemon=True)
        child.start()
        readies.append(ready)
        children.append(child)
    for ready in readies:
        if not ready.wait(120):
            raise RuntimeError("a floor process did not get ready in 120 s")
    go.set()
    results = [out.get(timeout=600) for _ in children]
    for child in children:
        child.join(30)
    return Floor(wall_s=max(r[1] for r in results) - min(r[0] for r in results), cpu_s=sum(r[2] for r in results),
                 requests=requests, processes=processes)


def main() -> None:
    from include.llm_simulator.testing import running_simulator

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--latency", type=float, default=5.0)
    args = parser.parse_args()
    with running_simulator(latency=args.latency, api_key="sk-floor") as sim:
        floor = sdk_floor(sim.openai_base_url, "sk-floor", requests=args.requests, layers=args.layers,
                          processes=args.processes)
    bound = args.latency * args.layers
    print(f"{args.requests} requests in {args.layers} layer(s) from {args.processes} process(es): {floor.wall_s:.2f} s, "
          f"{floor.wall_s / bound:.2f}x the {bound:g} s latency bound; client CPU {floor.cpu_s:.2f} s "
          f"({1000 * floor.cpu_s / args.requests:.2f} ms a request)")


if __name__ == "__main__":
    main()
