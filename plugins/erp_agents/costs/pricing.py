"""Price of one model request in USD: CostConfig overrides first, then genai-prices; never a silent $0."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Mapping

from genai_prices import Usage, calc_price

from erp_agents.exceptions import PermanentAgentError

# Our provider types -> genai-prices provider ids.
_GENAI_PROVIDER = {"openai": "openai", "openai_compatible": "openai", "anthropic": "anthropic"}


class UnknownPriceError(PermanentAgentError):
    """No price for a model: refusing to count its calls as free."""


@dataclass(frozen=True)
class TokenCounts:
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


def bare_model_name(model: str) -> str:
    return model.split(":", 1)[-1]


def price_usd(
    model: str,
    tokens: TokenCounts,
    *,
    provider_type: str | None = None,
    overrides: Mapping[str, Mapping[str, float]] | None = None,
) -> Decimal:
    """USD for one request. ``overrides`` is CostConfig.model_costs: USD per 1K input/output tokens."""
    name = bare_model_name(model)
    override = (overrides or {}).get(model) or (overrides or {}).get(name)
    if override is not None:
        per_k_in = Decimal(str(override["input"]))
        per_k_out = Decimal(str(override["output"]))
        return (per_k_in * tokens.input_tokens + per_k_out * tokens.output_tokens) / 1000
    usage = Usage(
        input_tokens=tokens.input_tokens,
        output_tokens=tokens.output_tokens,
        cache_read_tokens=tokens.cache_read_tokens or None,
        cache_write_tokens=tokens.cache_write_tokens or None,
    )
    try:
        calc = calc_price(usage, name, provider_id=_GENAI_PROVIDER.get(provider_type or ""))
    except LookupError as exc:
        raise UnknownPriceError(
            f"no price for model {name!r}: add it to EngineConfig cost_config.model_costs ({exc})"
        ) from None
    return Decimal(calc.total_price)


def has_price(model: str, provider_type: str | None, overrides: Mapping[str, object] | None = None) -> bool:
    try:
        price_usd(model, TokenCounts(1, 1), provider_type=provider_type, overrides=overrides)  # type: ignore[arg-type]
    except UnknownPriceError:
        return False
    return True
