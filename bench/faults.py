#!/usr/bin/env python
"""Fault benchmark: N agents through pydantic-ai over the LLM simulator, with the in-call retry loop.

Run from the repo root::

    python bench/faults.py [--agents 500] [--latency 0.5] [--rates 0,0.1,0.3] [--timeout 2]

Each agent is one pydantic-ai ``Agent`` run (one model request) against a real simulator subprocess;
every request asks for a random fault with ``x-sim-fault-rate`` (kinds: 429 with retry-after, 500,
502, 503, 504, 529, a dropped connection, a malformed body, and a hang past ``--timeout``). The
model is wrapped so that each request goes through ``erp_agents.runtime.retry.call_with_retries``
with the policy below, as GovernedModel does. All agents run at once in one event loop (the
practical floor of the triggerer). Printed per fault rate: success rate, wall time and extra wall
time over the fault-free run, retries per agent, the faults the server logged, task retries and
worker processes (both 0: nothing leaves the call). Exit 0 when every agent succeeded.
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
import logging  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
from openai import AsyncOpenAI  # noqa: E402
from pydantic_ai import Agent  # noqa: E402
from pydantic_ai.messages import ModelMessage, ModelResponse  # noqa: E402
from pydantic_ai.models import Model, ModelRequestParameters  # noqa: E402
from pydantic_ai.models.openai import OpenAIChatModel  # noqa: E402
from pydantic_ai.models.wrapper import WrapperModel  # noqa: E402
from pydantic_ai.providers.openai import OpenAIProvider  # noqa: E402
from pydantic_ai.settings import ModelSettings  # noqa: E402

from erp_agents.runtime.retry import RetryInfo, call_with_retries  # noqa: E402
from erp_agents.spec.models import RetryPolicy  # noqa: E402
from include.llm_simulator.testing import running_simulator  # noqa: E402

FAULT_KINDS = "429,500,502,503,504,529,drop,malformed,timeout"
POLICY = RetryPolicy(max_retries=8, strategy="exponential_backoff", base_delay=0.1, max_delay=2.0, jitter=True)
quiet = logging.getLogger("bench.faults")
quiet.setLevel(logging.ERROR)


class RetryingModel(WrapperModel):
    """Every request through the in-call retry loop; counts retries per agent run."""

    def __init__(self, wrapped: Model, deadline: float) -> None:
        super().__init__(wrapped)
        self.retries = 0
        self.deadline = deadline

    def _count(self, info: RetryInfo) -> None:
        self.retries += 1

    async def request(self, messages: list[ModelMessage], model_settings: ModelSettings | None,
                      model_request_parameters: ModelRequestParameters) -> ModelResponse:
        async def attempt() -> ModelResponse:
            return await self.wrapped.request(messages, model_settings, model_request_parameters)
        return await call_with_retries(attempt, POLICY, deadline=self.deadline, log=quiet, on_retry=self._count,
                                       mask=str)


async def run_phase(base_url: str, agents: int, rate: float, timeout: float, agent_timeout: float) -> dict[str, Any]:
    headers = {"x-sim-fault-rate": str(rate), "x-sim-fault-kinds": FAULT_KINDS}
    limits = httpx.Limits(max_connections=agents + 10, max_keepalive_connections=agents + 10)
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as http:
        client = AsyncOpenAI(base_url=base_url, api_key="bench-key", max_retries=0, http_client=http,
                             default_headers=headers, timeout=timeout)
        model = OpenAIChatModel("gpt-4o-mini", provider=OpenAIProvider(openai_client=client))

        async def one(index: int) -> tuple[bool, int]:
            governed = RetryingModel(model, time.monotonic() + agent_timeout)
            try:
                await Agent(governed).run(f"agent {index}: summarise the ledger", model_settings={"max_tokens": 50})
            except Exception:
                return False, governed.retries
            return True, governed.retries

        started = time.monotonic()
        results = await asyncio.gather(*(one(i) for i in range(agents)))
        wall = time.monotonic() - started
    ok = sum(1 for success, _ in results if success)
    return {"rate": rate, "ok": ok, "agents": agents, "wall": wall,
            "retries": sum(r for _, r in results), "max_retries": max(r for _, r in results)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.5, help="seconds each simulated request takes")
    parser.add_argument("--rates", default="0,0.1,0.3", help="comma list of fault shares")
    parser.add_argument("--timeout", type=float, default=2.0, help="per-request HTTP timeout (cuts a hang)")
    parser.add_argument("--agent-timeout", type=float, default=120.0, help="deadline of each agent run")
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    rows = []
    with running_simulator(latency=args.latency, seed=7) as sim:
        for rate in rates:
            sim.reset()
            row = asyncio.run(run_phase(sim.openai_base_url, args.agents, rate, args.timeout, args.agent_timeout))
            row["faults"] = Counter(e["fault"] for e in sim.requests() if e["fault"])
            row["requests"] = len(sim.requests())
            rows.append(row)
    baseline = next((r["wall"] for r in rows if r["rate"] == 0), rows[0]["wall"])
    print(f"{args.agents} agents, latency {args.latency}s, HTTP timeout {args.timeout}s, policy: "
          f"{POLICY.max_retries} retries, exponential from {POLICY.base_delay}s to {POLICY.max_delay}s, jitter")
    print(f"{'faults':>6} {'success':>8} {'wall s':>7} {'extra':>7} {'retries/agent':>13} {'max':>4} "
          f"{'requests':>8} {'task retries':>12} {'workers':>7}  injected")
    for r in rows:
        injected = ", ".join(f"{k}:{v}" for k, v in sorted(r["faults"].items()))
        print(f"{r['rate']:>6.0%} {r['ok'] / r['agents']:>8.1%} {r['wall']:>7.2f} {r['wall'] / baseline:>6.2f}x "
              f"{r['retries'] / r['agents']:>13.2f} {r['max_retries']:>4} {r['requests']:>8} {0:>12} {0:>7}  "
              f"{injected}")
    return 0 if all(r["ok"] == r["agents"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
