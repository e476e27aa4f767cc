"""The Coalescer: what arrives while a store write is in flight goes into the next one, and one bad
item fails only its own caller."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from erp_agents.batching import Coalescer


def test_what_arrives_during_a_write_goes_into_the_next_one() -> None:
    batches: list[list[int]] = []
    first_started, release_first = threading.Event(), threading.Event()

    def run_many(items: Sequence[int]) -> None:
        if not batches:
            first_started.set()
            release_first.wait(5)
        batches.append(list(items))

    async def main() -> None:
        coalescer: Coalescer[int, None] = Coalescer(run_many)
        first = asyncio.create_task(coalescer.submit(0))
        await asyncio.to_thread(first_started.wait, 5)
        rest = [asyncio.create_task(coalescer.submit(i)) for i in range(1, 6)]
        await asyncio.sleep(0.05)
        release_first.set()
        await asyncio.gather(first, *rest)

    asyncio.run(main())
    assert batches == [[0], [1, 2, 3, 4, 5]]


def test_a_failing_batch_is_retried_item_by_item_so_only_the_bad_item_fails() -> None:
    applied: list[str] = []

    def run_many(items: Sequence[str]) -> None:
        if "bad" in items:
            raise ValueError("bad item")
        applied.extend(items)

    async def main() -> list[object]:
        coalescer: Coalescer[str, None] = Coalescer(run_many)
        return await asyncio.gather(*(coalescer.submit(x) for x in ("a", "bad", "b")), return_exceptions=True)

    results = asyncio.run(main())
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], ValueError)
    assert sorted(applied) == ["a", "b"]


def test_a_cancelled_caller_still_gets_its_write() -> None:
    applied: list[int] = []
    gate = threading.Event()

    def run_many(items: Sequence[int]) -> None:
        gate.wait(5)
        applied.extend(items)

    async def main() -> None:
        coalescer: Coalescer[int, None] = Coalescer(run_many)
        caller = asyncio.create_task(coalescer.submit(7))
        await asyncio.sleep(0.05)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        gate.set()
        for _ in range(100):
            if applied:
                break
            await asyncio.sleep(0.01)

    asyncio.run(main())
    assert applied == [7]


def test_batches_are_capped() -> None:
    batches: list[int] = []
    gate = threading.Event()

    def run_many(items: Sequence[int]) -> None:
        gate.wait(5)
        batches.append(len(items))

    async def main() -> None:
        coalescer: Coalescer[int, None] = Coalescer(run_many, max_batch=3)
        tasks = [asyncio.create_task(coalescer.submit(i)) for i in range(8)]
        await asyncio.sleep(0.05)
        gate.set()
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert batches == [3, 3, 2]


def test_a_result_that_lands_after_its_caller_gave_up_goes_to_abandoned() -> None:
    gate = threading.Event()
    handed_back: list[int] = []

    def run_many(items: Sequence[int]) -> list[int]:
        gate.wait(5)
        return [item * 10 for item in items]

    async def main() -> None:
        coalescer: Coalescer[int, int] = Coalescer(run_many)
        kept = asyncio.create_task(coalescer.submit(1, abandoned=handed_back.append))
        given_up = asyncio.create_task(coalescer.submit(2, abandoned=handed_back.append))
        await asyncio.sleep(0.05)
        given_up.cancel()
        with pytest.raises(asyncio.CancelledError):
            await given_up
        gate.set()
        assert await kept == 10
        for _ in range(100):
            if handed_back:
                break
            await asyncio.sleep(0.01)

    asyncio.run(main())
    assert handed_back == [20]  # the kept caller's result is its own, not handed back
