"""The governance store: one SQL database for the cost ledger and the SQL rate limiter.

It is a database of its own, never Airflow's metadata DB: the embedded deployment creates it on
its PostgreSQL server, a user's deployment names it, and `airflow dags test` falls back to a
SQLite file under AIRFLOW_HOME. One SQLAlchemy engine per URL per process, so a triggerer running
hundreds of agents shares one connection pool.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event

GOVERNANCE_URL_ENV = "ERP_AGENTS_GOVERNANCE_DB_URL"
SQLITE_FILE = "erp_agents_governance.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def _airflow_setting() -> str | None:
    """``[erp_agents] governance_db_url`` from airflow.cfg or its AIRFLOW__ERP_AGENTS__ env twin."""
    value = os.environ.get("AIRFLOW__ERP_AGENTS__GOVERNANCE_DB_URL")
    if value:
        return value
    try:
        from airflow.configuration import conf
    except ImportError:  # pragma: no cover - Airflow is a dependency; kept for plain-library use
        return None
    return conf.get("erp_agents", "governance_db_url", fallback=None) or None


def governance_url() -> str:
    """The store's URL: explicit env, then Airflow config, then a SQLite file under AIRFLOW_HOME."""
    explicit = os.environ.get(GOVERNANCE_URL_ENV) or _airflow_setting()
    if explicit:
        return explicit
    home = Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")
    return f"sqlite:///{home / SQLITE_FILE}"


def _serialize_sqlite(engine: Engine) -> None:
    """WAL, a long busy timeout and BEGIN IMMEDIATE: read-modify-write transactions queue instead of
    failing with "database is locked" or deciding on a stale read."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let SQLAlchemy's "begin" event issue BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


@lru_cache(maxsize=None)
def engine_for(url: str) -> Engine:
    """One engine per URL per process; SQLite serialized, PostgreSQL pooled for a busy triggerer."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})
        _serialize_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, pool_recycle=1800)
