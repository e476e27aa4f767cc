"""Per-API-key limits: one exact sliding window (RPM/TPM) and one concurrency count per key.

Real providers limit per key (per organization), so two clients with different keys never
share a window. Keys are held only as a short SHA-256 digest (``key_hash``), the same one the
request log shows, so neither memory dumps nor logs carry a key.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field
from typing import Callable

from include.llm_simulator.ratelimit import RateDecision, SlidingWindowLimiter


def key_hash(api_key: str | None) -> str:
    """12 hex characters identifying a key in logs and limits (``-`` for no key)."""
    if not api_key:
        return "-"
    return hashlib.sha256(api_key.encode()).hexdigest()[:12]


@dataclass
class KeyQuota:
    """What one key has: its window and how many of its requests are being served."""

    window: SlidingWindowLimiter
    in_flight: int = 0
    peak_in_flight: int = 0


@dataclass
class KeyedLimits:
    """RPM/TPM per key over ``window_seconds`` and at most ``max_concurrent`` requests per key (0 = no limit)."""

    rpm: int = 0
    tpm: int = 0
    max_concurrent: int = 0
    window_seconds: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _keys: dict[str, KeyQuota] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def enabled(self) -> bool:
        """Whether any rate limit is on (rate headers are sent only then)."""
        return self.rpm > 0 or self.tpm > 0

    def quota(self, digest: str) -> KeyQuota:
        if digest not in self._keys:
            self._keys[digest] = KeyQuota(SlidingWindowLimiter(self.rpm, self.tpm, self.window_seconds, self.clock))
        return self._keys[digest]

    async def enter(self, digest: str) -> bool:
        """Take a concurrency slot for ``digest``; ``False`` when the key already has ``max_concurrent``."""
        async with self._lock:
            quota = self.quota(digest)
            if self.max_concurrent and quota.in_flight >= self.max_concurrent:
                return False
            quota.in_flight += 1
            quota.peak_in_flight = max(quota.peak_in_flight, quota.in_flight)
            return True

    async def leave(self, digest: str) -> None:
        """Give the slot taken by ``enter`` back."""
        async with self._lock:
            quota = self.quota(digest)
            quota.in_flight = max(quota.in_flight - 1, 0)

    async def acquire(self, digest: str, cost: int) -> RateDecision:
        """Admit one request of ``cost`` tokens into the key's window, or say how long to wait."""
        return await self.quota(digest).window.acquire(cost)

    def peaks(self) -> dict[str, int]:
        """Highest concurrency seen per key hash since start or reset."""
        return {digest: quota.peak_in_flight for digest, quota in self._keys.items()}

    async def reset(self) -> None:
        """Forget every window and peak; requests still in flight keep their slots."""
        async with self._lock:
            self._keys = {digest: KeyQuota(SlidingWindowLimiter(self.rpm, self.tpm, self.window_seconds, self.clock),
                                           quota.in_flight, quota.in_flight)
                          for digest, quota in self._keys.items() if quota.in_flight}
