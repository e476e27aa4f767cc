"""RateLimiter: async acquire/settle/release of all the tiers a model request must fit.

One dispatcher task per process and event loop serves the local waiters in priority order: it
tries the best waiter of each group of scopes against the store (in a thread, so the loop never
blocks), sleeps until the store's hint or a local settle wakes it, and keeps every local waiter
queued in the store so other processes serve them in the same order. Concurrency slots are leases
renewed while their request runs, so a killed process frees its slots within ``lease_s``.
A store that cannot be reached fails closed: waiters keep waiting (with a logged error) until
their deadline, and no request goes through unlimited.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from erp_agents.batching import Coalescer
from erp_agents.limits.backend import LimiterBackend, Waiter
from erp_agents.exceptions import RateLimitNeverFitsError
from erp_agents.limits.tiers import Tier
from erp_agents.limits.window import Attempt, never_fits, rank

log = logging.getLogger(__name__)

BATCH = 256  # waiters tried in one store call


@dataclass(frozen=True)
class Lease:
    """What one admitted request holds until it is settled or released."""

    id: str
    tiers: tuple[Tier, ...]
    tokens: int
    wait_s: float
    acquired_at: float


@dataclass
class _Pending:
    waiter: Waiter
    future: asyncio.Future[Attempt]
    deadline: float | None
    started: float = field(default_factory=time.monotonic)


class RateLimiter:
    """Acquire every tier or none; waiters by priority then arrival, across processes."""

    def __init__(self, backend: LimiterBackend, *, lease_s: float = 60.0, waiter_ttl_s: float = 10.0,
                 poll_s: float = 0.05, max_sleep_s: float = 0.5) -> None:
        self.backend = backend
        self.lease_s = lease_s
        self.waiter_ttl_s = waiter_ttl_s
        self.poll_s = poll_s
        self.max_sleep_s = max_sleep_s
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        self._pending: dict[str, _Pending] = {}
        self._live: dict[str, Lease] = {}
        self._known: dict[str, dict[str, Tier]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._store_down_since: float | None = None
        self._background: set[asyncio.Task[None]] = set()
        # Requests that finish together settle in one store transaction (their tier rows locked once).
        self._settles: Coalescer[tuple[str, tuple[Tier, ...], int, int], None] = Coalescer(backend.settle_many)

    # -- public ----------------------------------------------------------------------------------
    async def acquire(self, tiers: Sequence[Tier], *, tokens: int, priority: int, holder: str,
                      deadline: float | None = None) -> Lease:
        """Wait until every tier has room, then hold them all; ``deadline`` is on ``time.monotonic``."""
        tiers = tuple(tiers)
        too_big = never_fits(tiers, tokens)
        if too_big is not None:
            raise RateLimitNeverFitsError(
                f"a request of {tokens} tokens (prompt estimate + max_tokens) can never run: "
                f"{too_big.scope} allows {too_big.limit} tokens per {too_big.name}; lower max_tokens or raise the limit")
        for t in tiers:
            self._known.setdefault(t.scope, {})[t.name] = t
        waiter = Waiter(id=uuid.uuid4().hex, tiers=tiers, tokens=max(tokens, 0), priority=priority,
                        holder=f"{self.holder}:{holder}", arrival=round(time.time(), 3))  # ms: as the stores rank
        self._ensure_tasks()
        assert self._loop is not None and self._wake is not None
        pending = _Pending(waiter, self._loop.create_future(), deadline)
        self._pending[waiter.id] = pending
        self._wake.set()
        try:
            attempt = await pending.future
        except asyncio.CancelledError:
            if pending.future.done() and not pending.future.cancelled() and pending.future.exception() is None:
                # admitted just as the caller gave up: hand everything back
                self._release_soon(waiter.id, tiers)
            self._poke()  # a cancelled waiter still queued is withdrawn by the dispatcher
            raise
        lease = Lease(id=waiter.id, tiers=tiers, tokens=waiter.tokens,
                      wait_s=round(time.monotonic() - pending.started, 6), acquired_at=attempt.now)
        if any(t.kind == "concurrency" for t in tiers):
            self._live[lease.id] = lease
        return lease

    async def settle(self, lease: Lease, used_tokens: int) -> None:
        """The request went through: count its real tokens, refund the rest, free its slots."""
        self._live.pop(lease.id, None)
        try:
            await self._settles.submit((lease.id, lease.tiers, lease.tokens, used_tokens))
        except Exception as exc:  # counts stay conservative; leases expire on their own
            log.error("rate limiter store error in settle (counts kept, slots expire in %.0fs): %s", self.lease_s, exc)
        self._poke()

    async def release(self, lease: Lease, *, sent: bool) -> None:
        """The request failed: if it was sent the provider may have counted it, so counts stay."""
        self._live.pop(lease.id, None)
        await self._backend_call(self.backend.release, lease.id, lease.tiers, keep_counts=sent)
        self._poke()

    async def observe(self, scope: str, *, remaining_requests: int | None, remaining_tokens: int | None,
                      reset_requests_s: float | None, reset_tokens_s: float | None) -> None:
        """The provider's view of what is left: count at least what it says is used, until its reset."""
        known = self._known.get(scope, {})
        for kind, remaining, reset in (("requests", remaining_requests, reset_requests_s),
                                       ("tokens", remaining_tokens, reset_tokens_s)):
            tiers = sorted((t for t in known.values() if t.kind == kind), key=lambda t: t.window_s or 0.0)
            if remaining is None or not tiers:
                continue
            tier = tiers[0]
            used = tier.limit - max(remaining, 0)
            if used > 0:
                await self._backend_call(self.backend.hold, tier, used_by_server=used,
                                         reset_s=tier.window_s if reset is None else reset)

    async def headroom(self, tiers: Sequence[Tier]) -> dict[str, dict[str, int]]:
        """Limit, live usage and what is left per tier key, for monitoring."""
        used = await asyncio.to_thread(self.backend.usage, list(tiers))
        return {t.key: {"limit": t.limit, "used": used[t.key], "remaining": max(t.limit - used[t.key], 0)}
                for t in tiers}

    # -- internals -------------------------------------------------------------------------------
    async def _backend_call(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        try:
            await asyncio.to_thread(fn, *args, **kwargs)
        except Exception as exc:  # counts stay conservative; leases expire on their own
            log.error("rate limiter store error in %s (counts kept, slots expire in %.0fs): %s",
                      getattr(fn, "__name__", fn), self.lease_s, exc)

    def _release_soon(self, lease_id: str, tiers: tuple[Tier, ...]) -> None:
        assert self._loop is not None
        task = self._loop.create_task(self._backend_call(self.backend.release, lease_id, tiers, keep_counts=False))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _poke(self) -> None:
        if self._wake is not None and self._loop is not None and not self._loop.is_closed():
            try:
                if asyncio.get_running_loop() is self._loop:
                    self._wake.set()
            except RuntimeError:
                pass

    def _ensure_tasks(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._wake = loop, asyncio.Event()
            self._dispatcher = self._renewer = None
            self._pending.clear()
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = loop.create_task(self._dispatch(), name="erp-limits-dispatch")
        if self._renewer is None or self._renewer.done():
            self._renewer = loop.create_task(self._renew(), name="erp-limits-renew")

    def _expire_deadlines(self) -> list[Waiter]:
        now = time.monotonic()
        gone: list[Waiter] = []
        for wid, p in list(self._pending.items()):
            if p.future.done():
                gone.append(p.waiter)
                del self._pending[wid]
            elif p.deadline is not None and now >= p.deadline:
                down = "; the limiter store is unreachable" if self._store_down_since is not None else ""
                p.future.set_exception(TimeoutError(
                    f"rate limit not acquired within {now - p.started:.1f}s{down}"))
                gone.append(p.waiter)
                del self._pending[wid]
        return gone

    async def _dispatch(self) -> None:
        assert self._wake is not None
        registered: set[str] = set()
        last_register = 0.0
        backoff = 0.1
        while True:
            self._wake.clear()
            gone = self._expire_deadlines()
            if gone:
                registered.difference_update(w.id for w in gone)
                await self._backend_call(self.backend.withdraw, [w.id for w in gone],
                                         sorted({s for w in gone for s in w.scopes}))
            if not self._pending:
                await self._wake.wait()
                continue
            sleep = self.max_sleep_s
            blocked: set[str] = set()
            try:
                batch = sorted((p for p in self._pending.values() if not p.future.done()),
                               key=lambda p: rank(p.waiter.priority, p.waiter.arrival, p.waiter.id))[:BATCH]
                attempts = await asyncio.to_thread(self.backend.try_acquire_many, [p.waiter for p in batch],
                                                   lease_s=self.lease_s, waiter_ttl_s=self.waiter_ttl_s) if batch else []
                self._store_up()
                for p, attempt in zip(batch, attempts):
                    if attempt.admitted:
                        self._pending.pop(p.waiter.id, None)
                        registered.discard(p.waiter.id)
                        if p.future.done():  # cancelled meanwhile: give it back
                            self._release_soon(p.waiter.id, p.waiter.tiers)
                        else:
                            p.future.set_result(attempt)
                        continue
                    blocked |= p.waiter.scopes
                    if attempt.blocked_by == "skipped":
                        continue
                    registered.add(p.waiter.id)
                    hint = self.poll_s if attempt.retry_after_s is None else attempt.retry_after_s
                    sleep = min(sleep, max(hint, 0.002))
                if len(batch) == BATCH and not blocked:
                    sleep = 0.0  # more waiters than one batch: go on at once
                # waiters skipped behind a blocked one must still hold their place in the shared queue
                unregistered = [p.waiter for p in self._pending.values() if p.waiter.id not in registered]
                heartbeat = time.monotonic() - last_register > self.waiter_ttl_s / 3
                if blocked and (unregistered or heartbeat):
                    queued = [p.waiter for p in self._pending.values()] if heartbeat else unregistered
                    await asyncio.to_thread(self.backend.register, queued, waiter_ttl_s=self.waiter_ttl_s)
                    registered.update(w.id for w in queued)
                    if heartbeat:
                        last_register = time.monotonic()
                backoff = 0.1
            except Exception as exc:
                self._store_down(exc)
                sleep, backoff = backoff, min(backoff * 2, 2.0)
            if self._pending:
                deadlines = [p.deadline for p in self._pending.values() if p.deadline is not None]
                if deadlines:
                    sleep = min(sleep, max(min(deadlines) - time.monotonic(), 0.0))
            try:
                async with asyncio.timeout(sleep):  # unlike wait_for, never swallows a cancellation
                    await self._wake.wait()
            except TimeoutError:
                pass

    def _store_down(self, exc: BaseException) -> None:
        if self._store_down_since is None:
            self._store_down_since = time.monotonic()
        log.error("rate limiter store unreachable for %.1fs; %d request(s) wait (failing closed): %s",
                  time.monotonic() - self._store_down_since, len(self._pending), exc)

    def _store_up(self) -> None:
        if self._store_down_since is not None:
            log.warning("rate limiter store reachable again after %.1fs", time.monotonic() - self._store_down_since)
            self._store_down_since = None

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            leases = list(self._live.values())
            if leases:
                tiers = list({t.key: t for lease in leases for t in lease.tiers}.values())
                await self._backend_call(self.backend.renew, [lease.id for lease in leases], tiers,
                                         lease_s=self.lease_s)


_LIMITERS: dict[tuple[str, str, str, float], RateLimiter] = {}


def _default_sql_url() -> str:
    try:
        from erp_agents.store import governance_url  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        home = os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow"))
        return f"sqlite:///{home}/erp_agents_governance.db"
    return str(governance_url())


def limiter_for(config: Any, url: str | None = None) -> RateLimiter:
    """One limiter per process per ``LimiterConfig`` (backend, url, namespace, lease_seconds)."""
    backend_name = getattr(config, "backend", "sql")
    namespace = getattr(config, "namespace", "erp_agents")
    lease_s = float(getattr(config, "lease_seconds", 60.0))
    target = getattr(config, "url", None) or url
    if backend_name == "redis":
        target = target or "redis://127.0.0.1:6379/0"
    else:
        target = target or _default_sql_url()
    key = (backend_name, target, namespace, lease_s)
    if key not in _LIMITERS:
        backend: LimiterBackend
        if backend_name == "redis":
            from erp_agents.limits.redis_backend import RedisBackend

            backend = RedisBackend(target, namespace=namespace)
        else:
            from erp_agents.limits.sql_backend import SqlBackend

            backend = SqlBackend(target, namespace=namespace)
        _LIMITERS[key] = RateLimiter(backend, lease_s=lease_s)
    return _LIMITERS[key]
