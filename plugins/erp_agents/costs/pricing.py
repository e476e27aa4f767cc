"""Price of one model request: CostConfig overrides first, then genai-prices; never a silent $0.

Token counts follow pydantic-ai and genai-prices: ``input_tokens`` includes the cached and the
cache-written tokens, which are priced at their own rates when the model has them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from decimal import Decimal
from typing import Any, Mapping

import genai_prices
from genai_prices import Usage, calc_price

from erp_agents.costs.money import usd_to_micros
from erp_agents.exceptions import UnknownPriceError
from erp_agents.spec.models import bare_model_name

# Our provider types -> genai-prices provider ids.
_GENAI_PROVIDER = {"openai": "openai", "openai_compatible": "openai", "anthropic": "anthropic"}
COST_CONFIG_SOURCE = "cost_config"
GENAI_PRICES_SOURCE = f"genai-prices {genai_prices.__version__}"

# CostConfig.model_costs as dicts (``ModelPrice.model_dump()``) or the ModelPrice objects themselves.
PriceOverrides = Mapping[str, Any]

__all__ = [
    "COST_CONFIG_SOURCE", "GENAI_PRICES_SOURCE", "PriceQuote", "TokenCounts", "UnknownPriceError",
    "has_price", "price_usd", "quote", "worst_case_micros",
]


@dataclass(frozen=True)
class TokenCounts:
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass(frozen=True)
class PriceQuote:
    """The price of one request and where it came from, as the cost record and the ledger keep it."""

    usd: Decimal
    source: str
    price_date: date

    @property
    def micros(self) -> int:
        return usd_to_micros(self.usd)


def _override_for(model: str, overrides: PriceOverrides | None) -> Mapping[str, Any] | None:
    if not overrides:
        return None
    found = overrides.get(model) or overrides.get(bare_model_name(model))
    if found is None:
        return None
    if isinstance(found, Mapping):
        return found
    return dict(found.model_dump())


def _per_k(override: Mapping[str, Any], name: str, fallback: str = "input") -> Decimal:
    value = override.get(name)
    if value is None:
        value = override[fallback]
    return Decimal(str(value))


def _override_usd(override: Mapping[str, Any], tokens: TokenCounts) -> Decimal:
    uncached = max(0, tokens.input_tokens - tokens.cache_read_tokens - tokens.cache_write_tokens)
    total = (
        _per_k(override, "input") * uncached
        + _per_k(override, "cached_input") * tokens.cache_read_tokens
        + _per_k(override, "cache_write") * tokens.cache_write_tokens
        + _per_k(override, "output", "output") * tokens.output_tokens
    )
    return total / 1000


def quote(
    model: str,
    tokens: TokenCounts,
    *,
    provider_type: str | None = None,
    overrides: PriceOverrides | None = None,
    at: datetime | None = None,
) -> PriceQuote:
    """Price ``tokens`` at ``at`` (default: now, to the minute): CostConfig.model_costs (USD per 1K)
    over genai-prices."""
    override = _override_for(model, overrides)
    if override is not None:
        return PriceQuote(_override_usd(override, tokens), COST_CONFIG_SOURCE, (at or datetime.now(UTC)).date())
    name, provider_id = bare_model_name(model), _GENAI_PROVIDER.get(provider_type or "")
    if at is None:
        return _genai_quote_in_minute(name, provider_id, tokens, int(time.time() // 60))
    return _genai_quote(name, provider_id, tokens, at)


# genai-prices takes ~0.1-0.2 ms a lookup and each request needs four (the price check, two for the
# worst case, the settled cost): a tenth of a triggerer's CPU per agent in a burst of 2,000, where
# most lookups repeat. Prices may change at a given time, so a lookup holds for its minute only.
PRICE_CACHE_SIZE = 4096


@lru_cache(maxsize=PRICE_CACHE_SIZE)
def _genai_quote_in_minute(name: str, provider_id: str | None, tokens: TokenCounts, minute: int) -> PriceQuote:
    return _genai_quote(name, provider_id, tokens, datetime.fromtimestamp(minute * 60, UTC))


def _genai_quote(name: str, provider_id: str | None, tokens: TokenCounts, when: datetime) -> PriceQuote:
    usage = Usage(
        input_tokens=tokens.input_tokens,
        output_tokens=tokens.output_tokens,
        cache_read_tokens=tokens.cache_read_tokens or None,
        cache_write_tokens=tokens.cache_write_tokens or None,
    )
    try:
        calc = calc_price(usage, name, provider_id=provider_id, genai_request_timestamp=when)
    except LookupError as exc:
        raise UnknownPriceError(
            f"no price for model {name!r}: add it to EngineConfig cost_config.model_costs ({exc})"
        ) from None
    return PriceQuote(Decimal(calc.total_price), GENAI_PRICES_SOURCE, when.date())


def price_usd(
    model: str,
    tokens: TokenCounts,
    *,
    provider_type: str | None = None,
    overrides: PriceOverrides | None = None,
) -> Decimal:
    """USD for one request; ``quote`` also says where the price came from."""
    return quote(model, tokens, provider_type=provider_type, overrides=overrides).usd


def has_price(model: str, provider_type: str | None, overrides: PriceOverrides | None = None) -> bool:
    try:
        quote(model, TokenCounts(1, 1), provider_type=provider_type, overrides=overrides)
    except UnknownPriceError:
        return False
    return True


def worst_case_micros(
    model: str,
    provider_type: str | None,
    overrides: PriceOverrides | None,
    prompt_tokens: int,
    max_output_tokens: int,
) -> int:
    """The most one request can cost, rounded up: every prompt token at its dearest rate (plain input or
    cache write, whichever costs more) and every allowed output token."""
    plain = TokenCounts(prompt_tokens, max_output_tokens)
    written = TokenCounts(prompt_tokens, max_output_tokens, cache_write_tokens=prompt_tokens)
    usd = max(
        quote(model, plain, provider_type=provider_type, overrides=overrides).usd,
        quote(model, written, provider_type=provider_type, overrides=overrides).usd,
    )
    return usd_to_micros(usd, round_up=True)
