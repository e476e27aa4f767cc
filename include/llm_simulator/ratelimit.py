"""Exact sliding-window rate limits (requests and tokens per minute).

Every admitted request is remembered with its token cost (prompt tokens plus
the ``max_tokens`` it asked for, like OpenAI) for ``window`` seconds. A new
request is refused when the window already holds ``rpm`` requests or when its
cost would push the window's tokens above ``tpm``. A limit of 0 disables that
dimension; its headers are then omitted. Refused requests are not counted.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Literal

WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class RateSnapshot:
    """Limits, what is left, and seconds until the window is empty again."""

    rpm: int
    tpm: int
    remaining_requests: int
    remaining_tokens: int
    reset_requests: float
    reset_tokens: float


@dataclass(frozen=True)
class RateDecision:
    """Outcome of ``acquire``: allowed, or refused with a wait time."""

    allowed: bool
    snapshot: RateSnapshot
    retry_after: float = 0.0
    limited_by: Literal["requests", "tokens"] | None = None


class SlidingWindowLimiter:
    """Per-server RPM/TPM limiter; safe for concurrent coroutines."""

    def __init__(self, rpm: int = 0, tpm: int = 0, window: float = WINDOW_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rpm = rpm
        self.tpm = tpm
        self.window = window
        self._clock = clock
        self._entries: deque[tuple[float, int]] = deque()
        self._lock = asyncio.Lock()

    @property
    def enabled(self) -> bool:
        return self.rpm > 0 or self.tpm > 0

    def _prune(self, now: float) -> None:
        while self._entries and self._entries[0][0] + self.window <= now:
            self._entries.popleft()

    def _snapshot(self, now: float) -> RateSnapshot:
        used_tokens = sum(tokens for _, tokens in self._entries)
        last = self._entries[-1][0] + self.window - now if self._entries else 0.0
        last_tokens = next((t + self.window - now for t, n in reversed(self._entries) if n > 0), 0.0)
        return RateSnapshot(
            rpm=self.rpm,
            tpm=self.tpm,
            remaining_requests=max(self.rpm - len(self._entries), 0),
            remaining_tokens=max(self.tpm - used_tokens, 0),
            reset_requests=max(last, 0.0),
            reset_tokens=max(last_tokens, 0.0),
        )

    def _tokens_wait(self, now: float, cost: int) -> float:
        if cost > self.tpm:
            return self.window
        excess = sum(tokens for _, tokens in self._entries) + cost - self.tpm
        freed = 0
        for start, tokens in self._entries:
            freed += tokens
            if freed >= excess:
                return start + self.window - now
        return self.window

    async def acquire(self, cost: int) -> RateDecision:
        """Admit one request of ``cost`` tokens, or say how long to wait."""
        async with self._lock:
            now = self._clock()
            self._prune(now)
            if self.rpm and len(self._entries) >= self.rpm:
                wait = self._entries[len(self._entries) - self.rpm][0] + self.window - now
                return RateDecision(False, self._snapshot(now), max(wait, 0.001), "requests")
            used = sum(tokens for _, tokens in self._entries)
            if self.tpm and used + cost > self.tpm:
                wait = self._tokens_wait(now, cost)
                return RateDecision(False, self._snapshot(now), max(wait, 0.001), "tokens")
            if self.enabled:
                self._entries.append((now, cost))
            return RateDecision(True, self._snapshot(now))

    async def snapshot(self) -> RateSnapshot:
        async with self._lock:
            now = self._clock()
            self._prune(now)
            return self._snapshot(now)

    async def reset(self) -> None:
        async with self._lock:
            self._entries.clear()


def format_duration(seconds: float) -> str:
    """Go-style duration as in OpenAI headers: ``250ms``, ``1s``, ``6m0s``."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    seconds = math.ceil(seconds * 1000) / 1000
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{text}"
    if minutes:
        return f"{int(minutes)}m{text}"
    return text


def rfc3339_after(seconds: float, now: float | None = None) -> str:
    """Wall-clock time ``seconds`` from now in RFC 3339 (UTC, ``Z``)."""
    moment = datetime.fromtimestamp((time.time() if now is None else now) + seconds, tz=timezone.utc)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def openai_headers(snapshot: RateSnapshot) -> dict[str, str]:
    """``x-ratelimit-*`` headers for each enabled limit."""
    headers: dict[str, str] = {}
    if snapshot.rpm:
        headers["x-ratelimit-limit-requests"] = str(snapshot.rpm)
        headers["x-ratelimit-remaining-requests"] = str(snapshot.remaining_requests)
        headers["x-ratelimit-reset-requests"] = format_duration(snapshot.reset_requests)
    if snapshot.tpm:
        headers["x-ratelimit-limit-tokens"] = str(snapshot.tpm)
        headers["x-ratelimit-remaining-tokens"] = str(snapshot.remaining_tokens)
        headers["x-ratelimit-reset-tokens"] = format_duration(snapshot.reset_tokens)
    return headers


def anthropic_headers(snapshot: RateSnapshot) -> dict[str, str]:
    """``anthropic-ratelimit-*`` headers for each enabled limit."""
    headers: dict[str, str] = {}
    if snapshot.rpm:
        headers["anthropic-ratelimit-requests-limit"] = str(snapshot.rpm)
        headers["anthropic-ratelimit-requests-remaining"] = str(snapshot.remaining_requests)
        headers["anthropic-ratelimit-requests-reset"] = rfc3339_after(snapshot.reset_requests)
    if snapshot.tpm:
        headers["anthropic-ratelimit-tokens-limit"] = str(snapshot.tpm)
        headers["anthropic-ratelimit-tokens-remaining"] = str(snapshot.remaining_tokens)
        headers["anthropic-ratelimit-tokens-reset"] = rfc3339_after(snapshot.reset_tokens)
    return headers


def retry_after_headers(seconds: float) -> dict[str, str]:
    """``retry-after`` (integer seconds, rounded up) and ``retry-after-ms``."""
    return {"retry-after": str(max(1, math.ceil(seconds))), "retry-after-ms": str(max(1, math.ceil(seconds * 1000)))}
