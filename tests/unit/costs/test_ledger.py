"""Reservation math of the ledger on a SQLite file: all or nothing, idempotent, expiring, exact."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy import event as sa_event

from erp_agents.costs.ledger import Ledger
from erp_agents.costs.ledger_types import (
    Account,
    BudgetExceededError,
    CallKey,
    ChargeDetail,
    GovernanceStoreUnavailable,
    Reservation,
)
from erp_agents.store import engine_for

DETAIL = ChargeDetail(model="gpt-4o-mini", provider="openai", module="Finance", input_tokens=100, output_tokens=10)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    led = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", wait_for_in_flight_s=0.2)
    yield led
    led.close()


def key(task: str = "a", call: int = 1, try_number: int = 1) -> CallKey:
    return CallKey("dag", "run1", task, -1, try_number, call)


RUN = Account("run:dag/run1", 1000, "run")


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(coro)


def test_reserve_then_settle_moves_reserved_to_spent_and_frees_the_rest(ledger: Ledger) -> None:
    agent = Account("agent:dag/run1/a", 500, "agent")
    res = run(ledger.reserve(key(), [agent, RUN], 400))
    assert res.accounts == ("agent:dag/run1/a", "run:dag/run1")
    assert ledger.account_state(RUN.key).reserved_micros == 400
    run(ledger.settle(res, 150, DETAIL))
    state = ledger.account_state(RUN.key)
    assert (state.spent_micros, state.reserved_micros, state.remaining_micros) == (150, 0, 850)
    assert ledger.account_state(agent.key).spent_micros == 150


def test_all_or_nothing_when_one_account_cannot_fit(ledger: Ledger) -> None:
    small = Account("agent:dag/run1/a", 100, "agent")
    with pytest.raises(BudgetExceededError) as err:
        run(ledger.reserve(key(), [RUN, small], 101))
    assert "agent:dag/run1/a" in str(err.value)
    assert "budget $0.000100, spent $0.000000, reserved $0.000000, asked $0.000101" in str(err.value)
    assert ledger.account_state(RUN.key).reserved_micros == 0  # the run account was not touched


def test_exhausted_budget_fails_fast_without_waiting(ledger: Ledger) -> None:
    res = run(ledger.reserve(key("a"), [RUN], 900))
    run(ledger.settle(res, 900, DETAIL))
    started = time.monotonic()
    with pytest.raises(BudgetExceededError, match="spent \\$0.000900"):
        run(ledger.reserve(key("b"), [RUN], 101, wait_s=5))
    assert time.monotonic() - started < 1


def test_request_blocked_by_in_flight_waits_for_its_settle(ledger: Ledger) -> None:
    async def scenario() -> int:
        first = await ledger.reserve(key("a"), [RUN], 800)

        async def settle_later() -> None:
            await asyncio.sleep(0.1)
            await ledger.settle(first, 300, DETAIL)

        settler = asyncio.create_task(settle_later())
        second = await ledger.reserve(key("b"), [RUN], 600, wait_s=5)  # fits once the first settles at 300
        await settler
        return second.amount_micros

    assert run(scenario()) == 600
    assert ledger.account_state(RUN.key).reserved_micros == 600


def test_blocked_request_gives_up_after_its_wait(ledger: Ledger) -> None:
    run(ledger.reserve(key("a"), [RUN], 800))
    with pytest.raises(BudgetExceededError, match="reserved \\$0.000800, asked \\$0.000600"):
        run(ledger.reserve(key("b"), [RUN], 600, wait_s=0.1))


def test_same_call_key_is_reserved_and_settled_once(ledger: Ledger) -> None:
    first = run(ledger.reserve(key(), [RUN], 400))
    again = run(ledger.reserve(key(), [RUN], 400))
    assert again.amount_micros == 400 and ledger.account_state(RUN.key).reserved_micros == 400
    run(ledger.settle(first, 100, DETAIL))
    run(ledger.settle(again, 100, DETAIL))
    after = run(ledger.reserve(key(), [RUN], 400))
    assert after.settled
    state = ledger.account_state(RUN.key)
    assert (state.spent_micros, state.reserved_micros) == (100, 0)
    assert ledger.spend(dag_id="dag").calls == 1


def test_one_reserve_batch_decides_each_ask_as_if_alone_in_order(ledger: Ledger) -> None:
    """What the Coalescer gathers is one transaction: each ask sees the holds of those before it, a
    repeated call key holds once, and a released call is held again in its own row."""
    released = run(ledger.reserve(key("r"), [RUN], 100))
    run(ledger.release(released))
    outcomes = ledger._reserve_all([(key("a"), (RUN,), 400), (key("a"), (RUN,), 400), (key("r"), (RUN,), 300),
                                    (key("b"), (RUN,), 400), (key("c"), (RUN,), 200)])
    first, repeated, again, blocked, last = outcomes
    assert isinstance(first, Reservation) and isinstance(repeated, Reservation) and isinstance(again, Reservation)
    assert repeated.existing and repeated.amount_micros == 400  # the hold of the first ask, not a second one
    assert not isinstance(blocked, Reservation)  # 400 + 300 held: 400 more does not fit in 1000 while they run
    assert isinstance(last, Reservation)  # 200 still does
    assert ledger.account_state(RUN.key).reserved_micros == 900
    for reservation in (first, again, last):
        run(ledger.settle(reservation, 10, DETAIL))
    state = ledger.account_state(RUN.key)
    assert (state.spent_micros, state.reserved_micros) == (30, 0)
    assert ledger.spend(dag_id="dag").calls == 3


def test_release_bills_nothing_and_a_new_try_is_a_new_key(ledger: Ledger) -> None:
    res = run(ledger.reserve(key(try_number=1), [RUN], 700))
    run(ledger.release(res))
    run(ledger.release(res))
    assert ledger.account_state(RUN.key).reserved_micros == 0
    res2 = run(ledger.reserve(key(try_number=2), [RUN], 700))
    run(ledger.settle(res2, 50, DETAIL))
    assert ledger.account_state(RUN.key).spent_micros == 50


def test_expired_reservation_is_released_before_refusing(tmp_path: Path) -> None:
    led = Ledger(f"sqlite:///{tmp_path / 'l.db'}", reservation_ttl_s=0.05, wait_for_in_flight_s=0)
    run(led.reserve(key("dead"), [RUN], 900))
    time.sleep(0.1)
    res = run(led.reserve(key("alive"), [RUN], 900))
    assert led.account_state(RUN.key).reserved_micros == 900
    assert led.spend().expired_calls == 1
    run(led.settle(res, 10, DETAIL))
    led.close()


def test_a_settle_after_expiry_still_counts(tmp_path: Path) -> None:
    led = Ledger(f"sqlite:///{tmp_path / 'l.db'}", reservation_ttl_s=0.01)
    res = run(led.reserve(key(), [RUN], 500))
    time.sleep(0.05)
    assert led.expire_now() == 1
    run(led.settle(res, 120, DETAIL))
    state = led.account_state(RUN.key)
    assert (state.spent_micros, state.reserved_micros) == (120, 0)
    led.close()


def test_spend_sums_by_agent_module_model_and_day(ledger: Ledger) -> None:
    for task, module, model, cost in [("hr.a", "HR", "gpt-4o", 10), ("hr.a", "HR", "gpt-4o", 5), ("fin.b", "Finance", "gpt-4o-mini", 7)]:
        res = run(ledger.reserve(CallKey("dag", "r", task, -1, 1, cost), [], 20))
        run(ledger.settle(res, cost, ChargeDetail(model=model, module=module, input_tokens=cost, output_tokens=1)))
    report = ledger.spend(dag_id="dag", run_id="r")
    assert report.total_micros == 22 and report.calls == 3 and report.input_tokens == 22
    assert report.by_agent == {"dag/hr.a": 15, "dag/fin.b": 7}
    assert report.by_module == {"HR": 15, "Finance": 7}
    assert report.by_model == {"gpt-4o": 15, "gpt-4o-mini": 7}
    assert list(report.by_day.values()) == [22]
    assert [c.actual_micros for c in ledger.charges("dag", "r")] == [7, 5, 10]


def test_changed_budget_applies_to_the_next_reservation(ledger: Ledger) -> None:
    run(ledger.reserve(key("a"), [RUN], 900))
    with pytest.raises(BudgetExceededError):
        run(ledger.reserve(key("b"), [Account(RUN.key, 950, "run")], 100, wait_s=0))
    run(ledger.reserve(key("b"), [Account(RUN.key, 1000, "run")], 100))


def test_unreachable_store_fails_closed() -> None:
    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:9/none", connect_args={"connect_timeout": 1})
    with pytest.raises(GovernanceStoreUnavailable, match="cost ledger at postgresql\\+psycopg://nobody@127.0.0.1:9/none unavailable"):
        Ledger(engine)


def test_engine_for_is_shared(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert Ledger(url).engine is engine_for(url)


def test_a_reserve_cancelled_while_its_batch_is_in_the_store_is_released_when_it_lands(ledger: Ledger) -> None:
    """The caller (an agent whose task ended, a triggerer stopping) gave up; the hold it would have
    left must not wait for the reservation's expiry."""
    in_store, go_on = threading.Event(), threading.Event()
    reserve_all = ledger._reserve_all

    def slow_reserve_all(batch):  # noqa: ANN001, ANN202
        in_store.set()
        go_on.wait(5)
        return reserve_all(batch)

    ledger._reserve_all = slow_reserve_all  # type: ignore[method-assign]

    async def main() -> None:
        caller = asyncio.create_task(ledger.reserve(key("gone"), [RUN], 300))
        await asyncio.to_thread(in_store.wait, 5)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        go_on.set()
        for _ in range(200):
            state = ledger.account_state(RUN.key)
            if state is not None and state.reserved_micros == 0 and not ledger._background:
                return
            await asyncio.sleep(0.01)

    run(main())
    assert ledger.account_state(RUN.key).reserved_micros == 0
    again = run(ledger.reserve(key("gone"), [RUN], 300))  # the released key is free for a new try
    assert not again.existing


def test_a_batch_of_settles_charges_each_call_once_and_each_account_with_the_sum(ledger: Ledger) -> None:
    """Settles that land together (a fan-out's items) are one transaction: the run's account is
    updated once with the batch's sum, a key settled twice counts once, a key never reserved still
    counts, and a key settled in an earlier batch is left as it is."""
    agents = [Account(f"agent:dag/run1/{task}", 1000, "agent") for task in ("a", "b", "c")]
    reserved = [run(ledger.reserve(key(task), [agent, RUN], 200)) for task, agent in zip("abc", agents)]
    run(ledger.settle(reserved[2], 7, DETAIL))  # an earlier batch
    lost = Reservation(key("lost"), (RUN.key,), 0, 0.0)  # its hold expired and was swept, or was never made
    statements: list[str] = []
    sa_event.listen(ledger.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    ledger._settle_all([(reserved[0], 10, DETAIL), (reserved[1], 20, DETAIL), (reserved[0], 10, DETAIL),
                        (reserved[2], 99, DETAIL), (lost, 5, DETAIL)])
    state = ledger.account_state(RUN.key)
    assert (state.spent_micros, state.reserved_micros) == (7 + 10 + 20 + 5, 0)
    assert [ledger.account_state(a.key).spent_micros for a in agents] == [10, 20, 7]
    assert {c.key.task_id: c.actual_micros for c in ledger.charges("dag", "run1")} == {
        "a": 10, "b": 20, "c": 7, "lost": 5}
    account_updates = [s for s in statements if s.lstrip().upper().startswith("UPDATE ERP_LEDGER_ACCOUNTS")]
    assert len(account_updates) == 3  # the run's account and the two agents', once each
