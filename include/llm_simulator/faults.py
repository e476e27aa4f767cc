"""Fault injection: scripted (deterministic FIFO) and random (seeded).

A fault kind is one of ``timeout`` (hold the request until the client gives
up), ``malformed`` (200 with a body that is not JSON), ``drop`` (close the TCP
connection without any response), ``overloaded`` (Anthropic's 529) or an HTTP
error status such as ``500``. ``ok`` in a script means "answer normally" and
consumes one slot.

A request may also ask for its own fault with headers: ``x-sim-fault: 503``
(always that fault) or ``x-sim-fault-rate: 0.2`` (a seeded random fault, kinds
from ``x-sim-fault-kinds: 500,drop`` or else the server's ``--fault-kinds``).
Header faults come first, then scripts, then the server's random faults.

Scripts posted to ``/_sim/script`` are consumed one entry per model request.
Otherwise a request first takes from the queue scoped to its model, then from the
global queue; random faults apply only when no script entry was taken.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Iterable, Mapping

from include.llm_simulator.errors import SUPPORTED_ERROR_STATUSES

OK = "ok"
OVERLOADED = "overloaded"
TIMEOUT = "timeout"
MALFORMED = "malformed"
DROP = "drop"
SPECIAL_KINDS = frozenset({TIMEOUT, MALFORMED, DROP})
FAULT_KINDS = SPECIAL_KINDS | {OVERLOADED} | {str(status) for status in SUPPORTED_ERROR_STATUSES}
SCRIPT_ENTRIES = FAULT_KINDS | {OK}
TIMEOUT_SECONDS = 600.0
MALFORMED_BODY = b'{"id": "malformed", "choices": [ <<simulated malformed response>>'
FAULT_HEADER = "x-sim-fault"
FAULT_RATE_HEADER = "x-sim-fault-rate"
FAULT_KINDS_HEADER = "x-sim-fault-kinds"


def validate_kinds(kinds: Iterable[str], allowed: frozenset[str]) -> list[str]:
    """Normalise ``kinds``; raise ``ValueError`` naming any unknown entry."""
    normalised = [str(kind).strip().lower() for kind in kinds]
    unknown = sorted({kind for kind in normalised if kind not in allowed})
    if unknown:
        raise ValueError(f"unknown fault kind(s): {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    return normalised


def error_status(kind: str) -> int | None:
    """HTTP status for an error fault kind, else ``None``."""
    if kind == OVERLOADED:
        return 529
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

    def header_fault(self, headers: Mapping[str, str]) -> str | None:
        """The fault a request asks for in its headers; ``None`` when it asks for none (or draws none).

        Raises ``ValueError`` naming a bad header value.
        """
        forced = headers.get(FAULT_HEADER)
        if forced:
            return validate_kinds([forced], FAULT_KINDS)[0]
        rate_text = headers.get(FAULT_RATE_HEADER)
        if not rate_text:
            return None
        try:
            rate = float(rate_text)
        except ValueError:
            raise ValueError(f"{FAULT_RATE_HEADER} must be a number between 0 and 1, got {rate_text!r}") from None
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{FAULT_RATE_HEADER} must be between 0 and 1, got {rate_text!r}")
        kinds_text = headers.get(FAULT_KINDS_HEADER)
        kinds = validate_kinds(kinds_text.split(","), FAULT_KINDS) if kinds_text else self.kinds
        if kinds and self._random.random() < rate:
            return self._random.choice(kinds)
        return None

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
