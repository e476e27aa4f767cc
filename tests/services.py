"""The PostgreSQL and Redis servers some tests need: skip with a reason on a laptop, fail in CI."""

from __future__ import annotations

import os
import socket

import pytest

POSTGRES = ("127.0.0.1", 5432)
REDIS = ("127.0.0.1", 6379)


def require(name: str, address: tuple[str, int]) -> None:
    """Skip the test when the service is down, unless ERP_AGENTS_REQUIRE_SERVICES=1 (set by .ci/run)."""
    try:
        socket.create_connection(address, timeout=2).close()
    except OSError as exc:
        message = f"{name} is not reachable at {address[0]}:{address[1]} ({exc})"
        if os.environ.get("ERP_AGENTS_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)


def fresh_postgres_database(name: str) -> str:
    """Drop and create ``name`` on the local server; return its SQLAlchemy URL."""
    require("PostgreSQL", POSTGRES)
    import psycopg2

    conn = psycopg2.connect(host=POSTGRES[0], port=POSTGRES[1], user="postgres", dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return f"postgresql+psycopg2://postgres@{POSTGRES[0]}:{POSTGRES[1]}/{name}"
