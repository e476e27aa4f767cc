"""What a provider's response headers say about its rate limits.

OpenAI: ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` with Go-style durations
("6m0s", "250ms"). Anthropic: ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-
{limit,remaining,reset}`` with RFC 3339 reset times. Both: ``retry-after`` (seconds or an HTTP
date) and ``retry-after-ms``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


@dataclass(frozen=True)
class RateFeedback:
    """The provider's view; None where a header was absent or unreadable."""

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests_s: float | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens_s: float | None = None
    retry_after_s: float | None = None

    @property
    def empty(self) -> bool:
        return all(v is None for v in vars(self).values())


def parse_duration(text: str) -> float | None:
    """Go-style duration ("1m30s", "250ms", "6m0s", "0.5s") or plain seconds, in seconds."""
    text = text.strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNITS[u] for n, u in parts)


def _seconds_until(text: str, now: float) -> float | None:
    text = text.strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
    return max(moment.timestamp() - now, 0.0)


def _int(value: str | None) -> int | None:
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the server asks us to wait: ``retry-after-ms`` first, then ``retry-after``."""
    h = {k.lower(): v for k, v in headers.items()}
    if "retry-after-ms" in h:
        try:
            return max(float(h["retry-after-ms"]) / 1000.0, 0.0)
        except ValueError:
            pass
    if "retry-after" in h:
        value = h["retry-after"].strip()
        try:
            return max(float(value), 0.0)
        except ValueError:
            return _seconds_until(value, time.time() if now is None else now)
    return None


def parse_headers(headers: Mapping[str, str], now: float | None = None) -> RateFeedback:
    """Read OpenAI or Anthropic rate-limit headers (names case-insensitive)."""
    h = {k.lower(): v for k, v in headers.items()}
    wall = time.time() if now is None else now
    wait = retry_after(h, wall)
    if any(k.startswith("x-ratelimit-") for k in h):
        reset_r, reset_t = h.get("x-ratelimit-reset-requests"), h.get("x-ratelimit-reset-tokens")
        return RateFeedback(
            _int(h.get("x-ratelimit-limit-requests")), _int(h.get("x-ratelimit-remaining-requests")),
            parse_duration(reset_r) if reset_r else None,
            _int(h.get("x-ratelimit-limit-tokens")), _int(h.get("x-ratelimit-remaining-tokens")),
            parse_duration(reset_t) if reset_t else None, wait)
    if any(k.startswith("anthropic-ratelimit-") for k in h):
        def get(kind: str, what: str) -> str | None:
            return h.get(f"anthropic-ratelimit-{kind}-{what}")

        tokens = "tokens" if get("tokens", "limit") is not None else "input-tokens"
        reset_r, reset_t = get("requests", "reset"), get(tokens, "reset")
        return RateFeedback(
            _int(get("requests", "limit")), _int(get("requests", "remaining")),
            _seconds_until(reset_r, wall) if reset_r else None,
            _int(get(tokens, "limit")), _int(get(tokens, "remaining")),
            _seconds_until(reset_t, wall) if reset_t else None, wait)
    return RateFeedback(retry_after_s=wait)
