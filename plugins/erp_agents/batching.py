"""Many concurrent store writes of one kind become one transaction per batch.

Hundreds of agents in one triggerer finish their requests within seconds of each other, and every
settle locks the same few rows (a provider's window totals, a run's budget account): one
transaction each, they queue behind each other's row locks and commits. A ``Coalescer`` runs the
first item at once and, while that transaction is in flight, gathers what arrives into the next
one. No latency is added when the load is light; under load the rows are locked once per batch.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class _Queue(Generic[T]):
    pending: list[tuple[T, asyncio.Future[None]]] = field(default_factory=list)
    drain: asyncio.Task[None] | None = None


class Coalescer(Generic[T]):
    """``await submit(item)`` returns once ``run_many`` has applied the batch that held ``item``.

    ``run_many`` is synchronous (it runs in ``executor``) and all or nothing for its batch. When a
    batch fails, its items are tried one by one, so one bad item fails only its own caller.
    """

    def __init__(self, run_many: Callable[[Sequence[T]], None], *, executor: Executor | None = None,
                 max_batch: int = 256) -> None:
        self.run_many = run_many
        self.executor = executor
        self.max_batch = max_batch
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Queue[T]] = weakref.WeakKeyDictionary()

    async def submit(self, item: T) -> None:
        loop = asyncio.get_running_loop()
        queue = self._queues.setdefault(loop, _Queue())
        done: asyncio.Future[None] = loop.create_future()
        queue.pending.append((item, done))
        if queue.drain is None or queue.drain.done():
            queue.drain = loop.create_task(self._drain(queue), name="erp-coalesce")
        await asyncio.shield(done)  # a cancelled caller's write still lands, as the callers expect

    async def _drain(self, queue: _Queue[T]) -> None:
        loop = asyncio.get_running_loop()
        while queue.pending:
            batch, queue.pending = queue.pending[: self.max_batch], queue.pending[self.max_batch:]
            try:
                await loop.run_in_executor(self.executor, self.run_many, [item for item, _ in batch])
            except Exception:
                for item, done in batch:
                    await self._one(loop, item, done)
                continue
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

    async def _one(self, loop: asyncio.AbstractEventLoop, item: T, done: asyncio.Future[None]) -> None:
        try:
            await loop.run_in_executor(self.executor, self.run_many, [item])
        except Exception as exc:
            if not done.done():
                done.set_exception(exc)
        else:
            if not done.done():
                done.set_result(None)
