"""Micro-dollars, price quotes with their source, worst cases, accounts from a spec, and run costs."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from erp_agents.costs.accounts import accounts_for
from erp_agents.costs.ledger import Ledger
from erp_agents.costs.ledger_types import CallKey, ChargeDetail
from erp_agents.costs.money import budget_micros, micros_to_usd, usd_to_micros
from erp_agents.costs.pricing import GENAI_PRICES_SOURCE, TokenCounts, quote, worst_case_micros
from erp_agents.costs.run_costs import run_costs
from erp_agents.spec.models import CostConfig


def test_micros_are_exact_and_floats_are_refused() -> None:
    assert usd_to_micros("0.0000015") == 2 and usd_to_micros("0.0000015", round_up=True) == 2
    assert usd_to_micros(Decimal("0.0000011"), round_up=True) == 2
    assert micros_to_usd(1_234_567) == Decimal("1.234567")
    assert budget_micros(0.1) == 100_000  # through its text, not 0.1000000000000000055...
    with pytest.raises(TypeError):
        usd_to_micros(0.1)  # type: ignore[arg-type]


def test_cost_config_prices_cached_input_and_cache_writes_per_1k() -> None:
    overrides = {"gpt-4": {"input": 0.03, "output": 0.06, "cached_input": 0.015, "cache_write": None}}
    q = quote("gpt-4", TokenCounts(2000, 1000, cache_read_tokens=1000), overrides=overrides)
    assert q.usd == Decimal("0.105") and q.source == "cost_config"  # 1000 x .03 + 1000 x .015 + 1000 x .06
    assert quote("gpt-4", TokenCounts(1000, 0, cache_write_tokens=1000), overrides=overrides).usd == Decimal("0.03")


def test_genai_prices_quote_names_its_version_and_date() -> None:
    q = quote("gpt-4o-mini", TokenCounts(1_000_000, 0, cache_read_tokens=500_000), provider_type="openai")
    assert q.usd == Decimal("0.1125") and q.micros == 112_500
    assert q.source == GENAI_PRICES_SOURCE and q.source.startswith("genai-prices 0.")
    assert isinstance(q.price_date, date)


def test_worst_case_takes_the_dearer_of_input_and_cache_write() -> None:
    # claude-sonnet-4-5: $3/M input, $3.75/M cache write, $15/M output
    assert worst_case_micros("claude-sonnet-4-5", "anthropic", None, 1000, 100) == 3750 + 1500
    assert worst_case_micros("gpt-4o-mini", "openai", None, 1000, 1000) == 150 + 600
    assert worst_case_micros("x", None, {"x": {"input": 0.0000001, "output": 0}}, 1, 0) == 1  # rounded up


def test_accounts_for_an_agent_call() -> None:
    cfg = CostConfig(global_budget=20, module_budgets={"Finance": 5})
    found = accounts_for(dag_id="d", run_id="r", task_id="finance.a", module="Finance", cost_limit=0.5,
                         cost_budget=2.0, cost_config=cfg, map_index=3, day=date(2026, 12, 1))
    assert [(a.key, a.budget_micros, a.kind) for a in found] == [
        ("agent:d/r/finance.a[3]", 500_000, "agent"), ("run:d/r", 2_000_000, "run"),
        ("day:2026-12-01", 20_000_000, "day"), ("module:Finance:2026-12-01", 5_000_000, "module"),
    ]
    assert accounts_for(dag_id="d", run_id="r", task_id="hr.b", module="HR", cost_limit=None,
                        cost_budget=None, cost_config=CostConfig()) == ()


def test_run_costs_cover_every_try_and_compare_the_last_with_xcom(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")

    async def charge(task: str, try_number: int, call: int, micros: int, model: str = "gpt-4o") -> None:
        res = await ledger.reserve(CallKey("d", "r", task, -1, try_number, call), [], micros)
        await ledger.settle(res, micros, ChargeDetail(model=model, module=task.split(".")[0]))

    async def scenario() -> None:
        await charge("hr.a", 1, 1, 40_000)  # the failed try: XCom forgets it, the ledger does not
        await charge("hr.a", 2, 1, 30_000)
        await charge("hr.a", 2, 2, 5_000)
        await charge("fin.b", 1, 1, 7_000, "gpt-4o-mini")

    asyncio.run(scenario())
    costs = run_costs(ledger, "d", "r", {"hr.a": Decimal("0.035"), "fin.b": Decimal("0.03")})
    assert costs.total_usd == Decimal("0.082000")
    assert costs.by_agent == {"fin.b": 7_000, "hr.a": 75_000}
    assert costs.by_module == {"fin": 7_000, "hr": 75_000}
    assert costs.by_model == {"gpt-4o-mini": 7_000, "gpt-4o": 75_000}
    assert costs.last_try_by_agent == {"hr.a": 35_000, "fin.b": 7_000}
    assert costs.mismatches == {"fin.b": (Decimal("0.007000"), Decimal("0.03"))}
    ledger.close()
