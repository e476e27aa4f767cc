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


def test_a_lookup_is_reused_within_its_minute_and_repeated_in_the_next(monkeypatch):
    from datetime import UTC, datetime

    from erp_agents.costs import pricing

    calls: list[datetime] = []
    real = pricing.calc_price

    def counting(usage, name, **kwargs):
        calls.append(kwargs["genai_request_timestamp"])
        return real(usage, name, **kwargs)

    monkeypatch.setattr(pricing, "calc_price", counting)
    pricing._genai_quote_in_minute.cache_clear()
    now = [1_790_000_000.0]  # 2026-09-21, 14:13:20 UTC
    monkeypatch.setattr(pricing.time, "time", lambda: now[0])
    tokens = TokenCounts(25, 33)
    first = pricing.quote("gpt-4o-mini", tokens, provider_type="openai")
    assert pricing.quote("gpt-4o-mini", tokens, provider_type="openai") == first
    assert pricing.quote("gpt-4o-mini", TokenCounts(25, 34), provider_type="openai") != first
    assert len(calls) == 2 and calls[0] == datetime(2026, 9, 21, 14, 13, tzinfo=UTC)  # priced at the minute's start
    now[0] += 60
    assert pricing.quote("gpt-4o-mini", tokens, provider_type="openai") == first
    assert len(calls) == 3 and calls[-1] == datetime(2026, 9, 21, 14, 14, tzinfo=UTC)
    explicit = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert pricing.quote("gpt-4o-mini", tokens, provider_type="openai", at=explicit).price_date == explicit.date()
    assert calls[-1] == explicit  # a given time is priced as given, never from the cache
