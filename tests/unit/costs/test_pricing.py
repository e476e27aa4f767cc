from __future__ import annotations

from decimal import Decimal

import pytest

from erp_agents.costs.pricing import TokenCounts, UnknownPriceError, has_price, price_usd


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
