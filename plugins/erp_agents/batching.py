"""Many concurrent store writes of one kind become one transaction per batch.

Hundreds of agents in one triggerer finish their requests within seconds of each other, and every
settle locks the same few rows (a provider's window totals, a run's budget account): one
transaction each, they queue behind each other's row locks and commits. A ``Coalescer`` runs the
first item at once and, while that transaction is in flight, gathers what arrives into the next
one. No latency is added when the load is light; under load the rows are locked once per batch.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Queue(Generic[T, R]):
    pending: list[tuple[T, asyncio.Future[R]]] = field(default_factory=list)
    drain: asyncio.Task[None] | None = None


class Coalescer(Generic[T, R]):
    """``await submit(item)`` returns ``item``'s outcome once ``run_many`` has run its batch.

    ``run_many`` is synchronous (it runs in ``executor``) and one transaction for its batch; it
    returns one outcome per item, in order (a value, or the exception that item's caller gets), or
    None when every outcome is None. When it raises, the batch's items are tried one by one, so a bad
    item fails only its own caller.
    """

    def __init__(self, run_many: Callable[[Sequence[T]], Sequence[R | Exception] | None], *, executor: Executor | None = None,
                 max_batch: int = 256) -> None:
        self.run_many = run_many
        self.executor = executor
        self.max_batch = max_batch
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Queue[T, R]] = weakref.WeakKeyDictionary()

    async def submit(self, item: T, *, abandoned: Callable[[R], object] | None = None) -> R:
        """A cancelled caller's write still lands, as the callers expect; when it lands with a result
        nobody awaits any more (a reservation, say), ``abandoned`` gets that result so it can be undone."""
        loop = asyncio.get_running_loop()
        queue = self._queues.setdefault(loop, _Queue())
        done: asyncio.Future[R] = loop.create_future()
        queue.pending.append((item, done))
        if queue.drain is None or queue.drain.done():
            queue.drain = loop.create_task(self._drain(queue), name="erp-coalesce")
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            if abandoned is not None:
                done.add_done_callback(functools.partial(_hand_back, abandoned))
            raise

    async def _drain(self, queue: _Queue[T, R]) -> None:
        loop = asyncio.get_running_loop()
        while queue.pending:
            batch, queue.pending = queue.pending[: self.max_batch], queue.pending[self.max_batch:]
            try:
                outcomes = await loop.run_in_executor(self.executor, self.run_many, [item for item, _ in batch])
            except Exception:
                for item, done in batch:
                    await self._one(loop, item, done)
                continue
            for (_, done), outcome in zip(batch, [None] * len(batch) if outcomes is None else outcomes):
                _resolve(done, outcome)

    async def _one(self, loop: asyncio.AbstractEventLoop, item: T, done: asyncio.Future[R]) -> None:
        try:
            outcomes = await loop.run_in_executor(self.executor, self.run_many, [item])
        except Exception as exc:
            _resolve(done, exc)
        else:
            _resolve(done, None if outcomes is None else outcomes[0])


def _hand_back(abandoned: Callable[[R], object], done: asyncio.Future[R]) -> None:
    if not done.cancelled() and done.exception() is None:
        abandoned(done.result())


def _resolve(done: asyncio.Future[R], outcome: object) -> None:
    if done.done():
        return
    if isinstance(outcome, Exception):
        done.set_exception(outcome)
    else:
        done.set_result(outcome)  # type: ignore[arg-type]
