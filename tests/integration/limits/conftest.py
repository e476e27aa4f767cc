"""Limiter stores for the tests here: SQLite (a temporary file), PostgreSQL (its own database) and
Redis (its own DB number); each test gets a namespace of its own."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.services import POSTGRES, REDIS, fresh_postgres_database, require

PG_DATABASE = "erp_limits_test"
REDIS_URL = f"redis://{REDIS[0]}:{REDIS[1]}/5"
BACKENDS = ("sqlite", "postgres", "redis")


class FakeClock:
    """A clock tests move by hand; starts far from zero so negative cutoffs never matter."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="session")
def pg_url() -> str:
    return fresh_postgres_database(PG_DATABASE).replace("+psycopg2", "+psycopg")


def backend_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'limits.db'}"
    if kind == "postgres":
        return str(request.getfixturevalue("pg_url"))
    require("Redis", REDIS)
    return REDIS_URL


def make_backend(kind: str, url: str, namespace: str, clock: Callable[[], float] | None = None,
                 margin_s: float = 1.0) -> Any:
    if kind == "redis":
        from erp_agents.limits.redis_backend import RedisBackend

        return RedisBackend(url, namespace=namespace, margin_s=margin_s, now=clock)
    from erp_agents.limits.sql_backend import SqlBackend

    return SqlBackend(url, namespace=namespace, margin_s=margin_s, clock=clock)


@pytest.fixture(params=BACKENDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        require("PostgreSQL", POSTGRES)
    return str(request.param)


@pytest.fixture
def store_url(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    return backend_url(store_kind, tmp_path, request)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def backend(store_kind: str, store_url: str, clock: FakeClock) -> Iterator[Any]:
    store = make_backend(store_kind, store_url, f"t{uuid.uuid4().hex[:10]}", clock)
    yield store
    store.close()
