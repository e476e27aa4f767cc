"""Several OS processes on one store: no over-admission in the store's own records, concurrency
never above its slots, and waiters served by priority across processes."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import sqlalchemy as sa

from erp_agents.limits.limiter import RateLimiter
from erp_agents.limits.tiers import Tier
from limits_worker import _backend, hammer_into, queue_up

WINDOW, MARGIN = 2.0, 0.25
PROCESSES, TASKS, SECONDS = 3, 10, 3.0


def _context() -> Any:
    """Children forked from a fresh server process that imported the limiter once."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["erp_agents.limits.limiter", "erp_agents.limits.sql_backend",
                                "erp_agents.limits.redis_backend", "limits_worker"])
    return ctx


class Recorder(threading.Thread):
    """Reads the store's own entries of some tiers every 0.2 s (they leave the store when they expire)."""

    def __init__(self, kind: str, url: str, namespace: str, tiers: tuple[Tier, ...]) -> None:
        super().__init__(daemon=True)
        self.kind, self.url, self.keys = kind, url, [f"{namespace}:{t.key}" for t in tiers]
        self.seen: dict[str, dict[str, tuple[float, int]]] = {k: {} for k in self.keys}
        self.stop = threading.Event()

    def run(self) -> None:
        if self.kind == "redis":
            import redis

            client = redis.Redis.from_url(self.url)
            while True:
                final = self.stop.is_set()
                for key in self.keys:
                    amounts = {k.decode(): int(v) for k, v in client.hgetall(key + ":a").items()}
                    for m, score in client.zrange(key + ":z", 0, -1, withscores=True):
                        if m.decode() in amounts:
                            self.seen[key][m.decode()] = (score, amounts[m.decode()])
                if final:
                    break
                self.stop.wait(0.2)
            return
        engine = sa.create_engine(self.url)
        while True:
            final = self.stop.is_set()
            with engine.connect() as conn:
                rows = conn.execute(sa.text("SELECT key, lease_id, t, amount FROM erp_limits_entry WHERE key IN "
                                            "(:a, :b)"), {"a": self.keys[0], "b": self.keys[-1]})
                for key, lease_id, t, amount in rows:
                    self.seen[key][lease_id] = (float(t), int(amount))
            if final:
                break
            self.stop.wait(0.2)
        engine.dispose()

    def entries(self, tier_key: str) -> list[tuple[float, int]]:
        return sorted(self.seen[next(k for k in self.keys if k.endswith(":" + tier_key))].values())


def busiest(entries: list[tuple[float, int]], span: float) -> tuple[int, int]:
    """Most requests and most tokens in any window of ``span`` seconds (windows start at an entry)."""
    most_n = most_t = 0
    for i, (start, _) in enumerate(entries):
        inside = [n for t, n in entries[i:] if t < start + span]
        most_n, most_t = max(most_n, len(inside)), max(most_t, sum(inside))
    return most_n, most_t


def test_processes_hammering_one_store_never_over_admit(store_kind: str, store_url: str) -> None:
    namespace = f"mp{uuid.uuid4().hex[:8]}"
    rpw = Tier("provider:mp", "requests", 20, WINDOW, "rpm")
    tpw = Tier("provider:mp", "tokens", 3000, WINDOW, "tpm")
    slots = Tier("provider:mp", "concurrency", 6, None, "concurrent")
    tiers = (rpw, tpw, slots)
    _backend(store_kind, store_url, namespace, MARGIN).close()  # create the tables once
    ctx = _context()
    in_flight, peak = ctx.Value("i", 0), ctx.Value("i", 0)
    recorder = Recorder(store_kind, store_url, namespace, (rpw, tpw))
    recorder.start()
    counts = ctx.Array("i", PROCESSES)
    procs = [ctx.Process(target=hammer_into, args=(counts, seed, store_kind, store_url, namespace, MARGIN, tiers,
                                                   TASKS, SECONDS, seed, in_flight, peak)) for seed in range(PROCESSES)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    admitted = list(counts)
    recorder.stop.set()
    recorder.join()
    requests, tokens = recorder.entries(rpw.key), recorder.entries(tpw.key)
    assert all(n > 0 for n in admitted)  # every process got its share
    assert len(requests) == len(tokens) == sum(admitted)  # the store recorded every admission
    assert busiest(requests, WINDOW + MARGIN)[0] <= rpw.limit
    assert busiest(tokens, WINDOW + MARGIN)[1] <= tpw.limit
    assert peak.value <= slots.limit
    # nearly all of the limit was used: the binding tier allowed about this many admissions
    span = requests[-1][0] - requests[0][0]
    assert len(requests) >= 0.7 * rpw.limit * span / (WINDOW + MARGIN)


def test_waiters_in_other_processes_are_served_by_priority(store_kind: str, store_url: str) -> None:
    namespace = f"pq{uuid.uuid4().hex[:8]}"
    slot = (Tier("provider:pq", "concurrency", 1, None, "concurrent"),)
    main = RateLimiter(_backend(store_kind, store_url, namespace, 1.0), poll_s=0.02)
    lease = asyncio.run(main.acquire(slot, tokens=0, priority=5, holder="main"))
    ctx = _context()  # children start without re-importing Airflow
    with ProcessPoolExecutor(2, mp_context=ctx) as pool:
        low = pool.submit(queue_up, store_kind, store_url, namespace, slot, 1, 3, 0.05)
        time.sleep(0.5)
        high = pool.submit(queue_up, store_kind, store_url, namespace, slot, 9, 3, 0.05)
        _wait_until_queued(store_kind, store_url, namespace, 6)
        asyncio.run(main.settle(lease, 0))
        order = sorted(low.result(60) + high.result(60))
    assert [p for _, p in order] == [9, 9, 9, 1, 1, 1]


def _wait_until_queued(kind: str, url: str, namespace: str, count: int) -> None:
    """Block until ``count`` waiters are in the store's queue (children import slowly)."""
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        if _queued(kind, url, namespace) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"only {_queued(kind, url, namespace)} of {count} waiters queued")


def _queued(kind: str, url: str, namespace: str) -> Any:
    if kind == "redis":
        import redis

        return redis.Redis.from_url(url).zcard(f"{namespace}:q:provider:pq")
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM erp_limits_waiter WHERE scope = :s"),
                         {"s": f"{namespace}:provider:pq"}).scalar_one()
    engine.dispose()
    return n


def test_stores_opened_together_on_a_new_postgres_database_all_start() -> None:
    """Two triggerers starting on a new database used to race in CREATE TABLE: one failed on the
    other's table type (UniqueViolation on pg_type), and its first agent failed with it."""
    from erp_agents.limits.sql_backend import SqlBackend
    from tests.services import fresh_postgres_database

    for attempt in range(5):  # the race needs both checks to pass before either CREATE: try a few new databases
        url = fresh_postgres_database(f"erp_limits_create_{attempt}").replace("+psycopg2", "+psycopg")
        engines = [sa.create_engine(url, poolclass=sa.pool.NullPool) for _ in range(8)]
        barrier, errors = threading.Barrier(len(engines)), []

        def open_store(engine: sa.Engine) -> None:
            barrier.wait()
            try:
                SqlBackend(engine, namespace="create")
            except Exception as exc:  # noqa: BLE001 - every failure is the finding
                errors.append(exc)

        threads = [threading.Thread(target=open_store, args=(e,)) for e in engines]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for engine in engines:
            engine.dispose()
        assert errors == [], f"attempt {attempt}: {errors[0]!r}"
