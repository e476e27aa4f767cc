"""The status's ledger and limiter reads against a real SQLite governance store, written by the real
Ledger and the real SQL limiter backend."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from erp_agents.costs.ledger import Ledger
from erp_agents.costs.ledger_types import Account, CallKey, ChargeDetail
from erp_agents.limits.limiter import RateLimiter
from erp_agents.limits.sql_backend import SqlBackend
from erp_agents.monitoring.governance import LedgerReader, NoGovernance, default_reader, read_headroom
from erp_agents.monitoring.headroom import LimiterHeadroom, configured_tiers
from erp_agents.monitoring.status import RunRow, StatusInput, TierHeadroom, system_status
from erp_agents.spec.models import EngineConfig

TODAY = datetime.now(timezone.utc).date().isoformat()


def _detail(
    model: str, module: str, tokens: tuple[int, int], wait: float = 0.0, retries: int = 0
) -> ChargeDetail:
    return ChargeDetail(
        model=model,
        provider="openai",
        module=module,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        limiter_wait_s=wait,
        retries=retries,
        latency_s=0.5,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'governance.db'}"
    ledger = Ledger(url)
    day = Account(f"day:{TODAY}", 10_000_000, "day")
    run = Account("run:erp/r2", 1_000_000, "run")

    async def charge(
        dag: str,
        run_id: str,
        task: str,
        call: int,
        micros: int,
        detail: ChargeDetail,
        accounts: list[Account],
    ) -> None:
        reservation = await ledger.reserve(CallKey(dag, run_id, task, -1, 1, call), accounts, micros * 2)
        await ledger.settle(reservation, micros, detail)

    async def fill() -> None:
        await charge(
            "erp", "r1", "fin.a", 1, 100_000, _detail("gpt-4o-mini", "Finance", (100, 10), 0.5), [day]
        )
        await charge(
            "erp", "r1", "fin.a", 2, 200_000, _detail("gpt-4o-mini", "Finance", (200, 20), 1.5, 1), [day]
        )
        await charge("erp", "r2", "hr.b", 1, 250_000, _detail("gpt-4o", "HR", (50, 5)), [day, run])
        await charge("secret", "r1", "x.y", 1, 999_000, _detail("gpt-4o", "X", (1, 1)), [day])
        # in flight: reserved, not settled; must not count as spent
        await ledger.reserve(CallKey("erp", "r2", "hr.b", -1, 1, 2), [day, run], 300_000)

    asyncio.run(fill())
    ledger.close()
    yield url


def test_usage_per_agent_is_filtered_to_the_callers_dags(store: str) -> None:
    reader = LedgerReader.from_url(store)
    assert reader is not None
    now = datetime.now(timezone.utc)
    usage = {
        (u.dag_id, u.run_id, u.task_id): u for u in reader.agent_usage(["erp"], now - timedelta(hours=1), now)
    }
    assert set(usage) == {("erp", "r1", "fin.a"), ("erp", "r2", "hr.b")}  # "secret" is not the caller's
    a = usage[("erp", "r1", "fin.a")]
    assert (a.calls, a.input_tokens, a.output_tokens, a.cost_usd, a.limiter_wait_s, a.retries) == (
        2,
        300,
        30,
        0.3,
        2.0,
        1,
    )
    assert (a.module, a.model, a.provider) == ("Finance", "gpt-4o-mini", "openai")
    assert reader.agent_usage(["erp"], now - timedelta(hours=2), now - timedelta(hours=1)) == []


def test_budgets_and_run_burn_from_the_ledger_accounts(store: str) -> None:
    reader = LedgerReader.from_url(store)
    assert reader is not None
    now = datetime.now(timezone.utc)
    runs = [RunRow("erp", "r1", "success"), RunRow("erp", "r2", "running")]
    gov = reader.governance(["erp"], now - timedelta(hours=1), now, runs)
    (day,) = gov.budgets
    assert (day.account, day.budget_usd, day.spent_usd, day.reserved_usd) == (
        f"day:{TODAY}",
        10.0,
        1.549,
        0.3,
    )
    assert day.remaining_usd == 8.151
    assert gov.run_budgets == {("erp", "r2"): 1.0}
    usage = reader.agent_usage(["erp"], now - timedelta(hours=1), now) or []
    status = system_status(
        StatusInput(
            since=now - timedelta(hours=1),
            until=now,
            workflows=("erp",),
            runs=tuple(runs),
            tasks=(),
            usage=tuple(usage),
            governance=gov,
        )
    )
    assert status["cost_tracking"]["total_cost"] == 0.55
    assert status["rate_limiting"]["avg_wait_time"] == round(2.0 / 3, 3)
    assert status["cost_tracking"]["budget_burn"] == [
        {"dag_id": "erp", "run_id": "r2", "spent": 0.25, "budget": 1.0, "used_percent": 25.0}
    ]
    assert status["cost_tracking"]["by_model"]["gpt-4o"]["cost"] == 0.25


def test_a_store_without_a_ledger_falls_back_to_xcoms(tmp_path: Path) -> None:
    assert isinstance(default_reader(f"sqlite:///{tmp_path / 'empty.db'}"), NoGovernance)


def test_limiter_headroom_reads_the_live_windows(tmp_path: Path) -> None:
    engine = EngineConfig.model_validate(
        {
            "providers": {
                "openai": {
                    "type": "openai",
                    "conn_id": "openai_default",
                    "rate_limit_config": {
                        "requests_per_minute": 10,
                        "tokens_per_minute": 5000,
                        "concurrent_requests": 2,
                    },
                    "model_rate_limits": {"gpt-4o": {"requests_per_minute": 3}},
                }
            },
        }
    )
    tiers = configured_tiers(engine)
    assert {(t.scope, t.name) for t in tiers} >= {
        ("provider:openai", "rpm"),
        ("provider:openai", "tpm"),
        ("provider:openai", "concurrent"),
        ("model:openai:gpt-4o", "rpm"),
    }
    backend = SqlBackend(f"sqlite:///{tmp_path / 'limits.db'}")
    limiter = RateLimiter(backend)

    async def two_requests() -> None:
        chosen = [t for t in tiers if t.scope == "provider:openai" or t.scope == "model:openai:gpt-4o"]
        first = await limiter.acquire(chosen, tokens=1000, priority=1, holder="t1")
        await limiter.settle(first, 400)
        await limiter.acquire(chosen, tokens=700, priority=1, holder="t2")  # still in flight

    asyncio.run(two_requests())
    rows = {(h.scope, h.tier): h for h in LimiterHeadroom(engine, backend)()}
    assert (rows[("provider:openai", "rpm")].used, rows[("provider:openai", "rpm")].remaining) == (2, 8)
    assert rows[("provider:openai", "tpm")].used == 400 + 700
    assert rows[("provider:openai", "concurrent")].used == 1
    assert rows[("model:openai:gpt-4o", "rpm")].remaining == 1


def test_an_unreadable_limiter_store_gives_no_headroom_not_an_error() -> None:
    def broken() -> list[TierHeadroom]:
        raise ConnectionRefusedError("redis down")

    assert read_headroom(broken) == ()
