"""The ledger's two tables: accounts (budget, spent, reserved) and calls (one row per model request).

A call row is the reservation while the request is in flight and the charge once it is settled, so
idempotency is the primary key and a settled cost cannot be written twice.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

accounts = Table(
    "erp_ledger_accounts",
    metadata,
    Column("key", String(512), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("budget_micros", BigInteger, nullable=False),
    Column("spent_micros", BigInteger, nullable=False, default=0),
    Column("reserved_micros", BigInteger, nullable=False, default=0),
)

calls = Table(
    "erp_ledger_calls",
    metadata,
    Column("call_key", String(1024), primary_key=True),
    Column("dag_id", String(250), nullable=False),
    Column("run_id", String(250), nullable=False),
    Column("task_id", String(250), nullable=False),
    Column("map_index", Integer, nullable=False),
    Column("try_number", Integer, nullable=False),
    Column("call_no", Integer, nullable=False),
    # held -> settled | released | expired (holder died; reserve puts it back on hold if asked again)
    Column("state", String(16), nullable=False),
    Column("accounts", Text, nullable=False),  # JSON list of account keys
    Column("reserved_micros", BigInteger, nullable=False),
    Column("actual_micros", BigInteger),
    Column("holder", String(128), nullable=False),
    Column("created_at", Float, nullable=False),  # epoch seconds, UTC
    Column("expires_at", Float, nullable=False),
    Column("settled_at", Float),
    Column("day", String(10)),  # UTC day of the settle, for daily reports
    Column("module", String(250)),
    Column("provider", String(250)),
    Column("model", String(250)),
    Column("input_tokens", BigInteger),
    Column("output_tokens", BigInteger),
    Column("cached_tokens", BigInteger),
    Column("cache_write_tokens", BigInteger),
    Column("price_source", String(64)),
    Column("price_date", String(10)),
    Column("latency_s", Float),
    Column("retries", Integer),
    Column("limiter_wait_s", Float),
    Index("ix_erp_ledger_calls_state_expiry", "state", "expires_at"),
    Index("ix_erp_ledger_calls_run", "dag_id", "run_id"),
    Index("ix_erp_ledger_calls_day", "day"),
)
