"""Fault injection: scripted (deterministic FIFO) and random (seeded).

A fault kind is one of ``timeout`` (hold the request until the client gives
up), ``malformed`` (200 with a body that is not JSON), ``drop`` (close the TCP
connection without any response) or an HTTP error status such as ``500``.
``ok`` in a script means "answer normally" and consumes one slot.

Scripts posted to ``/_sim/script`` are consumed one entry per model request.
A request first takes from the queue scoped to its model, then from the
global queue; random faults apply only when no script entry was taken.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Iterable

from include.llm_simulator.errors import SUPPORTED_ERROR_STATUSES

OK = "ok"
TIMEOUT = "timeout"
MALFORMED = "malformed"
DROP = "drop"
SPECIAL_KINDS = frozenset({TIMEOUT, MALFORMED, DROP})
FAULT_KINDS = SPECIAL_KINDS | {str(status) for status in SUPPORTED_ERROR_STATUSES}
SCRIPT_ENTRIES = FAULT_KINDS | {OK}
TIMEOUT_SECONDS = 600.0
MALFORMED_BODY = b'{"id": "malformed", "choices": [ <<simulated malformed response>>'


def validate_kinds(kinds: Iterable[str], allowed: frozenset[str]) -> list[str]:
    """Normalise ``kinds``; raise ``ValueError`` naming any unknown entry."""
    normalised = [str(kind).strip().lower() for kind in kinds]
    unknown = sorted({kind for kind in normalised if kind not in allowed})
    if unknown:
        raise ValueError(f"unknown fault kind(s): {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    return normalised


def error_status(kind: str) -> int | None:
    """HTTP status for an error fault kind, else ``None``."""
    return int(kind) if kind.isdigit() else None


class FaultInjector:
    """Decides the fault (if any) for each model request."""

    def __init__(self, rate: float = 0.0, kinds: Iterable[str] = (), seed: int = 0) -> None:
        self.rate = rate
        self.kinds = validate_kinds(kinds, FAULT_KINDS)
        self._random = random.Random(f"{seed}:faults")
        self._global: deque[str] = deque()
        self._by_model: dict[str, deque[str]] = {}

    def script(self, responses: Iterable[str], model: str | None = None) -> int:
        """Queue scripted entries; returns how many are now pending in that queue."""
        entries = validate_kinds(responses, frozenset(SCRIPT_ENTRIES))
        queue = self._global if model is None else self._by_model.setdefault(model, deque())
        queue.extend(entries)
        return len(queue)

    def pending(self) -> dict[str, list[str]]:
        """Scripted entries not yet consumed, keyed by model (``*`` = any)."""
        result = {model: list(queue) for model, queue in self._by_model.items() if queue}
        if self._global:
            result["*"] = list(self._global)
        return result

    def next_fault(self, model: str) -> str | None:
        """The fault for the next request of ``model`` (``None`` = answer normally)."""
        scoped = self._by_model.get(model)
        if scoped:
            entry = scoped.popleft()
        elif self._global:
            entry = self._global.popleft()
        elif self.rate > 0 and self.kinds and self._random.random() < self.rate:
            entry = self._random.choice(self.kinds)
        else:
            return None
        return None if entry == OK else entry

    def reset(self) -> None:
        """Forget all scripts (the random sequence continues)."""
        self._global.clear()
        self._by_model.clear()
