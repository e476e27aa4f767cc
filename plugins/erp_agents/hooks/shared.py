"""What every agent of one triggerer shares: connection reads and provider models with their SDK client.

Hundreds of agents start at once in one event loop. Building an SDK client per agent costs a TLS
context (the CA bundle is read and parsed: ~60 ms of CPU on the loop) and a new connection pool,
so each request opened a new TCP connection; reading the connection per agent is one round trip to
the triggerer's supervisor each. Here both happen once per process and loop: the first agent to
ask builds, the others wait for that one build (single flight), and later agents get the result.

- A connection is read again after ``CONNECTION_TTL_S``; a changed connection (new key, new host)
  gets a new client, because the model key holds a digest of every field of the connection.
- Shared clients are never closed by an agent: one agent's exit would cut the others' requests.
- Caches belong to the running event loop (an HTTP pool cannot move between loops) and go with it.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import ssl
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import httpx2

CONNECTION_TTL_S = 60.0
MAX_SHARED_MODELS = 256  # distinct (connection, model, options) per process; least recently used leave


def connection_digest(conn: Any) -> str:
    """A digest of every field of a connection: any change, a rotated key included, changes it."""
    fields = [getattr(conn, name, None) for name in ("conn_type", "host", "login", "password", "port", "schema")]
    extra = getattr(conn, "extra", None)
    raw = json.dumps([*fields, extra], sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass
class _Entry:
    task: asyncio.Task[Any]
    expires_at: float


@dataclass
class SingleFlight:
    """Async values built once per key: concurrent callers await the same build; a failed build is
    forgotten, so the next caller tries again; entries expire after ``ttl_s`` (None: never)."""

    ttl_s: float | None = None
    max_entries: int | None = None
    _entries: OrderedDict[Hashable, _Entry] = field(default_factory=OrderedDict)

    async def get(self, key: Hashable, build: Callable[[], Awaitable[Any]]) -> Any:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is None or entry.expires_at <= now:
            task = asyncio.ensure_future(build())
            expires = now + self.ttl_s if self.ttl_s is not None else float("inf")
            entry = self._entries[key] = _Entry(task, expires)
            task.add_done_callback(functools.partial(self._forget_failed, key, entry))
            self._trim()
        self._entries.move_to_end(key)
        # shield: one caller's cancellation (its timeout) must not cancel the build the others wait on.
        return await asyncio.shield(entry.task)

    def _forget_failed(self, key: Hashable, entry: _Entry, _done: object = None) -> None:
        if (entry.task.cancelled() or entry.task.exception() is not None) and self._entries.get(key) is entry:
            del self._entries[key]

    def _trim(self) -> None:
        while self.max_entries is not None and len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


@dataclass
class LoopCaches:
    connections: SingleFlight = field(default_factory=lambda: SingleFlight(ttl_s=CONNECTION_TTL_S))
    models: SingleFlight = field(default_factory=lambda: SingleFlight(max_entries=MAX_SHARED_MODELS))
    tls: SingleFlight = field(default_factory=SingleFlight)


_BY_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopCaches] = weakref.WeakKeyDictionary()


def loop_caches() -> LoopCaches:
    """The caches of the running event loop."""
    loop = asyncio.get_running_loop()
    caches = _BY_LOOP.get(loop)
    if caches is None:
        caches = _BY_LOOP[loop] = LoopCaches()
    return caches


async def tls_context() -> ssl.SSLContext:
    """One TLS context (the CA bundle read and parsed once, in a thread) for every pool of the loop."""
    return await loop_caches().tls.get("tls", lambda: asyncio.to_thread(httpx2.create_ssl_context))  # type: ignore[no-any-return]


def clear_model_cache() -> None:
    """Forget every shared connection, model and TLS context (a bench's per-agent baseline, tests)."""
    _BY_LOOP.clear()
