"""Tiers: the individual limits a request must fit, derived from a ``RateLimitConfig``.

A tier is one number over one sliding window in one scope ("provider:openai", "model:openai:gpt-4o").
Every tier of every scope that applies is acquired together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

TierKind = Literal["requests", "tokens", "concurrency"]

# (config field, tier name, kind, window seconds)
_FIELDS: tuple[tuple[str, str, TierKind, float | None], ...] = (
    ("requests_per_minute", "rpm", "requests", 60.0),
    ("requests_per_hour", "rph", "requests", 3600.0),
    ("requests_per_day", "rpd", "requests", 86400.0),
    ("tokens_per_minute", "tpm", "tokens", 60.0),
    ("tokens_per_day", "tpd", "tokens", 86400.0),
    ("concurrent_requests", "concurrent", "concurrency", None),
)


@dataclass(frozen=True)
class Tier:
    """One limit: at most ``limit`` requests or tokens in any ``window_s`` seconds, or ``limit`` at once."""

    scope: str
    kind: TierKind
    limit: int
    window_s: float | None
    name: str  # "rpm", "rph", "rpd", "tpm", "tpd", "concurrent"

    @property
    def key(self) -> str:
        """Unique within a deployment's namespace: the scope and the tier name."""
        return f"{self.scope}|{self.name}"

    def amount(self, tokens: int) -> int:
        """What one request of ``tokens`` reserved tokens counts against this tier."""
        return tokens if self.kind == "tokens" else 1


def tiers_of(scope: str, cfg: Any) -> tuple[Tier, ...]:
    """The tiers a ``RateLimitConfig`` sets for ``scope``; a missing, null or 0 field is no limit."""
    tiers: list[Tier] = []
    for field, name, kind, window in _FIELDS:
        value = getattr(cfg, field, None)
        if value is None or value <= 0:
            continue
        tiers.append(Tier(scope=scope, kind=kind, limit=int(value), window_s=window, name=name))
    return tuple(tiers)


def tiers_for(scopes: list[tuple[str, Any]] | tuple[tuple[str, Any], ...]) -> tuple[Tier, ...]:
    """All tiers of ``EngineConfig.effective_rate_limits(...)``'s (scope, config) pairs."""
    return tuple(t for scope, cfg in scopes for t in tiers_of(scope, cfg))
