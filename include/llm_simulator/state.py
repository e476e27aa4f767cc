"""Mutable per-server state shared by all routes (``app.state.sim``)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from include.llm_simulator.caching import PromptCache
from include.llm_simulator.faults import FaultInjector
from include.llm_simulator.log import RequestLog
from include.llm_simulator.quota import KeyedLimits
from include.llm_simulator.settings import SimulatorSettings


@dataclass
class SimulatorState:
    """Log, limiter, fault injector, prompt cache and latency randomness of one server."""

    settings: SimulatorSettings
    log: RequestLog
    limiter: KeyedLimits
    faults: FaultInjector
    cache: PromptCache = field(default_factory=lambda: PromptCache(0))
    latency_random: random.Random = field(default_factory=random.Random)

    @classmethod
    def from_settings(cls, settings: SimulatorSettings) -> "SimulatorState":
        return cls(
            settings=settings,
            log=RequestLog(settings.log_path),
            limiter=KeyedLimits(settings.rpm, settings.tpm, settings.max_concurrent, settings.window_seconds),
            faults=FaultInjector(settings.fault_rate, settings.fault_kinds, settings.seed),
            cache=PromptCache(settings.cache_min_tokens),
            latency_random=random.Random(f"{settings.seed}:latency"),
        )

    def latency(self) -> float:
        """Configured latency with uniform jitter, never negative."""
        jitter = self.settings.latency_jitter
        delay = self.settings.latency + (self.latency_random.uniform(-jitter, jitter) if jitter else 0.0)
        return max(delay, 0.0)

    async def reset(self) -> None:
        """Clear memory log, rate-limit window, fault scripts and prompt cache."""
        self.log.reset()
        await self.limiter.reset()
        self.faults.reset()
        self.cache.reset()
