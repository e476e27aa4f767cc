"""Server configuration, immutable once the app is built."""

from __future__ import annotations

from dataclasses import dataclass

from include.llm_simulator.faults import FAULT_KINDS, TIMEOUT_SECONDS, validate_kinds

DEFAULT_FAULT_KINDS: tuple[str, ...] = ("500", "timeout", "malformed", "drop")
DEFAULT_CACHE_MIN_TOKENS = 1024


@dataclass(frozen=True)
class SimulatorSettings:
    """Everything the CLI can set; 0 means unlimited for ``rpm``/``tpm``.

    ``api_key`` of ``None`` or ``""`` accepts any non-empty key. ``rpm``, ``tpm`` and
    ``max_concurrent`` hold per API key, over a sliding window of ``window_seconds``.
    ``echo_key`` puts the request's key into error bodies and answers (never into the log),
    so tests that check a key never leaks can fail.
    ``timeout_seconds`` is how long a ``timeout`` fault holds a request when
    the client does not hang up first. ``cache_min_tokens`` is the smallest
    prompt prefix that prompt caching stores and reads, see ``caching``.
    """

    host: str = "127.0.0.1"
    port: int = 8765
    latency: float = 0.0
    latency_jitter: float = 0.0
    log_path: str | None = None
    rpm: int = 0
    tpm: int = 0
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = DEFAULT_FAULT_KINDS
    seed: int = 0
    api_key: str | None = None
    timeout_seconds: float = TIMEOUT_SECONDS
    cache_min_tokens: int = DEFAULT_CACHE_MIN_TOKENS
    window_seconds: float = 60.0
    max_concurrent: int = 0
    echo_key: bool = False

    def __post_init__(self) -> None:
        if self.latency < 0 or self.latency_jitter < 0:
            raise ValueError("latency and latency_jitter must be >= 0")
        if self.rpm < 0 or self.tpm < 0:
            raise ValueError("rpm and tpm must be >= 0 (0 = unlimited)")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError("fault_rate must be between 0 and 1")
        if not 0 <= self.port <= 65535:
            raise ValueError("port must be between 0 and 65535")
        if self.window_seconds <= 0:
            raise ValueError("window_seconds must be > 0")
        if self.max_concurrent < 0:
            raise ValueError("max_concurrent must be >= 0 (0 = unlimited)")
        if self.cache_min_tokens < 0:
            raise ValueError("cache_min_tokens must be >= 0")
        object.__setattr__(self, "fault_kinds", tuple(validate_kinds(self.fault_kinds, FAULT_KINDS)))
        object.__setattr__(self, "api_key", self.api_key or None)
        object.__setattr__(self, "log_path", self.log_path or None)
