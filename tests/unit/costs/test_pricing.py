from __future__ import annotations

from decimal import Decimal

import pytest

from erp_agents.costs.pricing import TokenCounts, UnknownPriceError, has_price, price_usd
from erp_agents.costs.record import CostRecord, RequestCost, total_of


def test_genai_prices_for_known_models():
    # gpt-4o-mini: $0.15 / 1M input, $0.60 / 1M output
    assert price_usd("gpt-4o-mini", TokenCounts(1_000_000, 1_000_000), provider_type="openai") == Decimal("0.75")
    assert price_usd("openai:gpt-4o-mini", TokenCounts(1000, 0), provider_type="openai") == Decimal("0.00015")


def test_seed_cost_config_overrides_per_1k_tokens():
    overrides = {"gpt-4": {"input": 0.03, "output": 0.06}}
    assert price_usd("gpt-4", TokenCounts(2000, 1000), overrides=overrides) == Decimal("0.12")


def test_unknown_model_is_an_error_never_zero():
    with pytest.raises(UnknownPriceError, match="no price for model 'in-house-13b'"):
        price_usd("in-house-13b", TokenCounts(1, 1), provider_type="openai_compatible")
    assert has_price("in-house-13b", "openai_compatible") is False
    assert has_price("in-house-13b", "openai_compatible", {"in-house-13b": {"input": 0, "output": 0}}) is True


def test_cost_record_accumulates_and_round_trips():
    record = CostRecord(workflow="w", agent="a", module="HR", provider="openai", model="gpt-4o-mini")
    record.add(RequestCost("gpt-4o-mini", 100, 20, 0, 0.001, 0.5))
    record.add(RequestCost("gpt-4o-mini", 50, 10, 5, 0.0005, 0.25))
    assert (record.calls, record.input_tokens, record.output_tokens, record.total_tokens) == (2, 150, 30, 180)
    assert record.cost_usd == pytest.approx(0.0015) and record.latency_s == 0.75
    import json

    again = CostRecord.from_xcom(json.dumps(record.to_dict()))
    assert again == record
    totals = total_of([record, again])
    assert (totals.calls, totals.total_tokens, totals.cost_usd) == (4, 360, pytest.approx(0.003))
