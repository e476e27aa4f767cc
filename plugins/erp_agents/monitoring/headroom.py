"""Limiter headroom per tier, for the status: every provider's and model's configured tiers, with the
live usage the limiter's backend (SQL or Redis) holds for them right now."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from erp_agents.limits.tiers import Tier, tiers_of
from erp_agents.monitoring.status import TierHeadroom
from erp_agents.spec.models import EngineConfig


def configured_tiers(engine: EngineConfig) -> tuple[Tier, ...]:
    """The tiers of each provider (its own limits or the engine's) and of each model with its own limits."""
    tiers: list[Tier] = []
    for name, provider in sorted(engine.providers.items()):
        tiers += tiers_of(f"provider:{name}", engine.provider_limits(name))
        for model, limits in sorted(provider.model_rate_limits.items()):
            tiers += tiers_of(f"model:{name}:{model}", limits.explicit())
    return tuple(tiers)


def headroom_of(tiers: Sequence[Tier], used: dict[str, int]) -> list[TierHeadroom]:
    return [
        TierHeadroom(scope=t.scope, tier=t.name, limit=t.limit, used=int(used.get(t.key, 0))) for t in tiers
    ]


class LimiterHeadroom:
    """A ``HeadroomSource``: reads the deployment's limiter backend (the one ``limiter_for`` would use)."""

    def __init__(self, engine: EngineConfig, backend: Any = None) -> None:
        self.tiers = configured_tiers(engine)
        if backend is None:
            from erp_agents.limits.limiter import limiter_for

            backend = limiter_for(engine.limiter).backend
        self.backend = backend

    def __call__(self) -> list[TierHeadroom]:
        if not self.tiers:
            return []
        return headroom_of(self.tiers, self.backend.usage(list(self.tiers)))
