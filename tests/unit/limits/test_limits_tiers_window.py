"""Tiers from a RateLimitConfig and the pure window math."""

from __future__ import annotations

from types import SimpleNamespace

from erp_agents.limits.tiers import Tier, tiers_for, tiers_of
from erp_agents.limits.window import cutoff, never_fits, rank, seconds_until_fits
from erp_agents.spec.models import RateLimitConfig


def test_tiers_of_a_config_skip_unset_limits() -> None:
    cfg = RateLimitConfig(requests_per_minute=30, requests_per_hour=None, requests_per_day=None,
                          tokens_per_minute=6000, concurrent_requests=5)
    tiers = tiers_of("provider:openai", cfg)
    assert [(t.name, t.kind, t.limit, t.window_s) for t in tiers] == [
        ("rpm", "requests", 30, 60.0), ("tpm", "tokens", 6000, 60.0), ("concurrent", "concurrency", 5, None)]
    assert tiers[0].key == "provider:openai|rpm"


def test_tokens_per_day_and_several_scopes() -> None:
    cfg = SimpleNamespace(requests_per_minute=None, tokens_per_day=1_000_000, concurrent_requests=2)
    tiers = tiers_for([("provider:a", cfg), ("model:a:m", cfg)])
    assert {(t.scope, t.name, t.window_s) for t in tiers} == {
        ("provider:a", "tpd", 86400.0), ("provider:a", "concurrent", None),
        ("model:a:m", "tpd", 86400.0), ("model:a:m", "concurrent", None)}


def test_amount_is_one_request_or_the_reserved_tokens() -> None:
    assert Tier("s", "requests", 5, 60.0, "rpm").amount(700) == 1
    assert Tier("s", "tokens", 5000, 60.0, "tpm").amount(700) == 700


def test_seconds_until_the_oldest_entries_free_enough() -> None:
    entries = [(0.0, 400), (10.0, 300), (20.0, 300)]
    assert seconds_until_fits(entries, 1000, 100, 1000, 60.0, 1.0, 30.0) == 31.0  # first entry leaves at 61
    assert seconds_until_fits(entries, 1000, 500, 1000, 60.0, 1.0, 30.0) == 41.0  # needs the second too
    assert seconds_until_fits(entries, 600, 100, 1000, 60.0, 1.0, 30.0) == 0.0
    assert seconds_until_fits(entries, 1000, 2000, 1000, 60.0, 1.0, 30.0) is None
    assert cutoff(100.0, 60.0, 1.0) == 39.0


def test_never_fits_names_the_token_tier() -> None:
    tpm = Tier("provider:p", "tokens", 1000, 60.0, "tpm")
    assert never_fits((Tier("provider:p", "requests", 1, 60.0, "rpm"), tpm), 1001) == tpm
    assert never_fits((tpm,), 1000) is None


def test_rank_orders_priority_then_arrival_then_id() -> None:
    keys = sorted([rank(1, 0.0, "a"), rank(9, 5.0, "b"), rank(9, 1.0, "c"), rank(9, 1.0, "a")])
    assert keys == [rank(9, 1.0, "a"), rank(9, 1.0, "c"), rank(9, 5.0, "b"), rank(1, 0.0, "a")]
