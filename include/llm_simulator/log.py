"""Request log: JSONL file plus an in-memory copy, and live statistics.

One entry per model request, appended and flushed as soon as the request
finishes, so a crashed test run still leaves a complete trail. Headers are
never logged because they carry API keys.

Entry fields: ``id``, ``api`` (``openai``/``anthropic``: the error format; both
OpenAI dialects log ``openai``), ``path`` (``/v1/chat/completions``,
``/v1/responses`` or ``/v1/messages``), ``model``,
``ts_start``, ``ts_end`` (unix seconds), ``status`` (HTTP status, or null when
no response was sent: ``drop``/``timeout``), ``request`` (body), ``response``
(body or null), ``usage`` (``input_tokens``/``output_tokens``, zero for
failures; ``input_tokens`` is the whole prompt, cached part included, in every
dialect; plus ``cache_read_tokens``/``cache_write_tokens`` when the request
read or wrote the prompt cache, see ``caching``), ``fault`` (injected fault
kind or null), ``key_hash`` (12 hex chars of the key's SHA-256, never the key),
``admitted`` (passed the key's concurrency and rate limits), ``tokens_counted``
(prompt plus ``max_tokens`` counted against the key's token window; 0 when
rejected) and ``limited_by`` (``requests``, ``tokens`` or ``concurrency`` for a
rate-limit 429, else null).
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any


class RequestLog:
    """Collects entries and tracks concurrency for ``/_sim`` endpoints."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else None
        self._entries: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._file = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        self.in_flight = 0
        self.peak_in_flight = 0

    def new_id(self) -> str:
        """Unique request id (monotonic for the life of the server)."""
        return f"req_{next(self._ids):08d}"

    def begin(self) -> None:
        """Mark a model request as in flight."""
        with self._lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def end(self, entry: dict[str, Any]) -> None:
        """Record a finished request and mark it no longer in flight."""
        line = json.dumps(entry, ensure_ascii=False, default=str)
        with self._lock:
            self.in_flight -= 1
            self._entries.append(entry)
            if self._file is not None:
                self._file.write(line + "\n")
                self._file.flush()

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._entries)

    def stats(self) -> dict[str, Any]:
        """Counts by status and model, plus in-flight figures."""
        with self._lock:
            by_status = Counter("none" if e["status"] is None else str(e["status"]) for e in self._entries)
            by_model = Counter(str(e["model"]) for e in self._entries)
            faults = Counter(e["fault"] for e in self._entries if e["fault"])
            return {
                "total": len(self._entries),
                "by_status": dict(by_status),
                "by_model": dict(by_model),
                "by_fault": dict(faults),
                "in_flight": self.in_flight,
                "peak_in_flight": self.peak_in_flight,
            }

    def reset(self) -> None:
        """Clear the memory log and the peak (the file is kept)."""
        with self._lock:
            self._entries.clear()
            self.peak_in_flight = self.in_flight

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
