"""Several OS processes race for one run budget on PostgreSQL and on SQLite: spend never exceeds it,
nothing is charged twice, and a holder killed with SIGKILL gives its reservation back on expiry."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from erp_agents.costs.ledger import Ledger
from erp_agents.costs.ledger_tables import calls
from erp_agents.costs.ledger_types import Account, CallKey, ChargeDetail
from tests.services import fresh_postgres_database

WORKER = Path(__file__).with_name("race_worker.py")
PROCESSES, AGENTS, WORST = 4, 25, 1000
BUDGET = 30_000  # 100 agents of up to 1000 each: about half of them fit at their real cost


@pytest.fixture(scope="module")
def pg_url() -> str:
    return fresh_postgres_database("erp_ledger_test")


@pytest.fixture(params=["postgresql", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'race.db'}"


def spawn(url: str, run_id: str, worker: int, agents: int, budget: int, mode: str, ttl: float = 900) -> subprocess.Popen[str]:
    args = [sys.executable, str(WORKER), url, run_id, str(worker), str(agents), str(budget), str(WORST), mode, str(ttl)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env={**os.environ})


def test_processes_racing_never_overrun_the_budget(url: str) -> None:
    run_id = uuid.uuid4().hex
    Ledger(url).close()  # tables exist before the race: the race is about money, not DDL
    procs = [spawn(url, run_id, w, AGENTS, BUDGET, "race") for w in range(PROCESSES)]
    results = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    settled = sum(r["settled_micros"] for r in results)
    state = Ledger(url).account_state(f"run:race/{run_id}")
    assert state is not None
    assert state.spent_micros == settled <= BUDGET
    assert state.reserved_micros == 0
    assert sum(r["settled"] + r["refused"] for r in results) == PROCESSES * AGENTS
    assert sum(r["replays_settled"] for r in results) == sum(r["settled"] for r in results)
    assert BUDGET - settled < WORST  # refused only when even the settled spend left no room for one call
    with create_engine(url).connect() as conn:
        rows = conn.execute(select(func.count(), func.sum(calls.c.actual_micros)).where(
            calls.c.run_id == run_id, calls.c.state == "settled")).one()
    assert (rows[0], rows[1]) == (sum(r["settled"] for r in results), settled)


def test_killed_holder_gives_its_reservation_back_after_expiry(url: str) -> None:
    run_id = uuid.uuid4().hex
    holder = spawn(url, run_id, 0, 1, 1500, "hold", ttl=1.0)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    ledger = Ledger(url, reservation_ttl_s=1.0)
    run = Account(f"run:race/{run_id}", 1500, "run")

    async def after_kill() -> None:
        res = await ledger.reserve(CallKey("race", run_id, "survivor", -1, 1, 1), [run], WORST, wait_s=10)
        await ledger.settle(res, 700, ChargeDetail(model="m"))
        await ledger.settle(res, 700, ChargeDetail(model="m"))

    asyncio.run(after_kill())
    state = ledger.account_state(run.key)
    assert state is not None and (state.spent_micros, state.reserved_micros) == (700, 0)
    report = ledger.spend(dag_id="race", run_id=run_id)
    assert (report.calls, report.total_micros, report.expired_calls, report.in_flight_micros) == (1, 700, 1, 0)
    ledger.close()


def test_a_charge_waits_for_the_wal_flush_even_where_the_server_does_not(pg_url: str) -> None:
    """The embedded server runs with ``synchronous_commit=off`` (for Airflow's own writes); a settled
    charge is money already billed, so its transaction turns durable commits back on."""
    from sqlalchemy import event

    engine = create_engine(pg_url)
    seen: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def record(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        if "synchronous_commit" in statement:
            seen.append(statement)

    ledger = Ledger(engine)
    key = CallKey("wal", uuid.uuid4().hex, "t", -1, 1, 1)

    async def reserve_and_settle() -> None:
        held = await ledger.reserve(key, [Account("run:wal/x", 10_000, "run")], 500)
        await ledger.settle(held, 400, ChargeDetail(model="m", provider="p", module="HR"))

    asyncio.run(reserve_and_settle())
    ledger.close()
    assert seen == ["SET LOCAL synchronous_commit = on"]  # the settle only: a hold is not money yet


def test_a_batch_of_reservations_sees_its_own_holds(url: str) -> None:
    """Reservations that arrive together are made in one transaction: each sees the holds of those
    before it, so the batch admits exactly what fits and the rest wait (or are refused)."""
    from erp_agents.costs.ledger import _Blocked
    from erp_agents.exceptions import BudgetExceededError

    ledger = Ledger(url)
    run_id = uuid.uuid4().hex
    run = Account(f"run:batch/{run_id}", 2_500, "run")
    asks = [(CallKey("batch", run_id, f"t{i}", -1, 1, 1), (run,), 1_000) for i in range(4)]
    asks.append((CallKey("batch", run_id, "big", -1, 1, 1), (run,), 3_000))  # can never fit
    outcomes = ledger._reserve_all(asks)
    assert [type(o).__name__ for o in outcomes] == ["Reservation", "Reservation", "_Blocked", "_Blocked",
                                                   "BudgetExceededError"]
    assert isinstance(outcomes[2], _Blocked) and isinstance(outcomes[4], BudgetExceededError)
    state = ledger.account_state(run.key)
    assert state is not None and (state.reserved_micros, state.spent_micros) == (2_000, 0)
    # The same keys again (a replay) get their holds back, not new ones.
    again = ledger._reserve_all(asks[:2])
    assert [o.existing for o in again] == [True, True]  # type: ignore[union-attr]
    assert ledger.account_state(run.key).reserved_micros == 2_000  # type: ignore[union-attr]
    ledger.close()
