"""One OS process racing for a shared run budget; prints what it settled as JSON.

    race_worker.py URL RUN_ID WORKER AGENTS BUDGET WORST race   # reserve, settle (twice), re-reserve
    race_worker.py URL RUN_ID WORKER 1 BUDGET WORST hold        # reserve, say "held", wait to be killed
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time

from erp_agents.costs.ledger import Ledger
from erp_agents.costs.ledger_types import Account, BudgetExceededError, CallKey, ChargeDetail


async def race(ledger: Ledger, run_id: str, worker: int, agents: int, run: Account, worst: int) -> dict[str, int]:
    rng = random.Random(worker)
    out = {"settled": 0, "refused": 0, "settled_micros": 0, "replays_settled": 0}

    async def agent(i: int) -> None:
        key = CallKey("race", run_id, f"w{worker}.a{i}", -1, 1, 1)
        try:
            res = await ledger.reserve(key, [run], worst, wait_s=30)
        except BudgetExceededError:
            out["refused"] += 1
            return
        await asyncio.sleep(rng.uniform(0, 0.02))
        actual = rng.randint(worst // 4, worst)
        await ledger.settle(res, actual, ChargeDetail(model="m", module="Race", input_tokens=actual))
        await ledger.settle(res, actual, ChargeDetail(model="m", module="Race"))  # a replay: no-op
        replay = await ledger.reserve(key, [run], worst)
        out["replays_settled"] += replay.settled
        out["settled"] += 1
        out["settled_micros"] += actual

    await asyncio.gather(*(agent(i) for i in range(agents)))
    return out


async def hold(ledger: Ledger, run_id: str, worker: int, run: Account, worst: int) -> None:
    await ledger.reserve(CallKey("race", run_id, f"holder{worker}", -1, 1, 1), [run], worst)
    print("held", flush=True)
    time.sleep(3600)


def main() -> None:
    url, run_id, worker, agents, budget, worst, mode = sys.argv[1:8]
    ttl = float(sys.argv[8]) if len(sys.argv) > 8 else 900.0
    ledger = Ledger(url, reservation_ttl_s=ttl)
    run = Account(f"run:race/{run_id}", int(budget), "run")
    if mode == "hold":
        asyncio.run(hold(ledger, run_id, int(worker), run, int(worst)))
    else:
        print(json.dumps(asyncio.run(race(ledger, run_id, int(worker), int(agents), run, int(worst)))), flush=True)
    ledger.close()


if __name__ == "__main__":
    main()
