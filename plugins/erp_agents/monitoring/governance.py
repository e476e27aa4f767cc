"""What the status reads from the governance store (ledger spend, budgets, limiter headroom), behind one seam.

The ledger is money's source of truth: it has one row per settled model request, every try included,
whatever Airflow did to XCom. When no ledger is reachable the status falls back to the XComs agents
push (``NoGovernance``). Reads are filtered to the DAG ids the caller may see in Airflow, because the
governance store itself knows nothing about Airflow's permissions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Protocol

from sqlalchemy import Engine, func, inspect, select
from sqlalchemy.exc import SQLAlchemyError

from erp_agents.monitoring.status import AgentUsage, Budget, Governance, RunRow, TierHeadroom

MICROS = 1_000_000
log = logging.getLogger(__name__)

HeadroomSource = Callable[[], Sequence[TierHeadroom]]


def read_headroom(source: HeadroomSource | None) -> tuple[TierHeadroom, ...]:
    """The limiter's headroom, or none (with a warning) when its store cannot be read right now."""
    if source is None:
        return ()
    from redis.exceptions import RedisError

    from erp_agents.exceptions import GovernanceStoreUnavailable

    try:
        return tuple(source())
    except (GovernanceStoreUnavailable, SQLAlchemyError, RedisError, OSError) as exc:
        log.warning("limiter store unreadable, status shows no headroom: %s", exc)
        return ()


class GovernanceReader(Protocol):
    """Ledger and limiter reads the status needs; ``None`` from a usage method means "no ledger here"."""

    def agent_usage(
        self, dag_ids: Sequence[str], since: datetime, until: datetime
    ) -> list[AgentUsage] | None: ...

    def run_usage(self, dag_id: str, run_id: str) -> list[AgentUsage] | None: ...

    def governance(
        self, dag_ids: Sequence[str], since: datetime, until: datetime, runs: Sequence[RunRow]
    ) -> Governance: ...


class NoGovernance:
    """No ledger and no limiter: usage comes from XComs, headroom and budgets are empty."""

    def __init__(self, headroom: HeadroomSource | None = None) -> None:
        self._headroom = headroom

    def agent_usage(
        self, dag_ids: Sequence[str], since: datetime, until: datetime
    ) -> list[AgentUsage] | None:
        return None

    def run_usage(self, dag_id: str, run_id: str) -> list[AgentUsage] | None:
        return None

    def governance(
        self, dag_ids: Sequence[str], since: datetime, until: datetime, runs: Sequence[RunRow]
    ) -> Governance:
        return Governance(headroom=read_headroom(self._headroom))


class LedgerReader:
    """Read-only SQL over the ledger's tables (``erp_agents.costs.ledger_tables``)."""

    def __init__(self, engine: Engine, headroom: HeadroomSource | None = None) -> None:
        from erp_agents.costs import ledger_tables

        self.engine = engine
        self._calls = ledger_tables.calls
        self._accounts = ledger_tables.accounts
        self._headroom = headroom

    @classmethod
    def from_url(cls, url: str, headroom: HeadroomSource | None = None) -> LedgerReader | None:
        """A reader when ``url`` holds a ledger; None when the store has no ledger tables yet."""
        from erp_agents.store import engine_for

        engine = engine_for(url)
        with engine.connect() as conn:
            if not inspect(conn).has_table("erp_ledger_calls"):
                return None
        return cls(engine, headroom)

    def _usage(self, where: list[object]) -> list[AgentUsage]:
        c = self._calls.c
        query = (
            select(
                c.dag_id,
                c.run_id,
                c.task_id,
                func.max(c.module),
                func.max(c.model),
                func.max(c.provider),
                func.sum(c.input_tokens),
                func.sum(c.output_tokens),
                func.sum(c.actual_micros),
                func.count(),
                func.sum(c.retries),
                func.sum(c.limiter_wait_s),
                func.sum(c.latency_s),
            )
            .where(c.state == "settled", *where)  # type: ignore[arg-type]
            .group_by(c.dag_id, c.run_id, c.task_id)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            AgentUsage(
                dag_id=r[0],
                run_id=r[1],
                task_id=r[2],
                module=r[3] or "",
                model=r[4] or "",
                provider=r[5] or "",
                input_tokens=int(r[6] or 0),
                output_tokens=int(r[7] or 0),
                cost_usd=int(r[8] or 0) / MICROS,
                calls=int(r[9]),
                retries=int(r[10] or 0),
                limiter_wait_s=float(r[11] or 0.0),
                latency_s=float(r[12] or 0.0),
            )
            for r in rows
        ]

    def agent_usage(
        self, dag_ids: Sequence[str], since: datetime, until: datetime
    ) -> list[AgentUsage] | None:
        if not dag_ids:
            return []
        c = self._calls.c
        return self._usage(
            [
                c.dag_id.in_(list(dag_ids)),
                c.settled_at >= since.timestamp(),
                c.settled_at <= until.timestamp(),
            ]
        )

    def run_usage(self, dag_id: str, run_id: str) -> list[AgentUsage] | None:
        c = self._calls.c
        return self._usage([c.dag_id == dag_id, c.run_id == run_id])

    def governance(
        self, dag_ids: Sequence[str], since: datetime, until: datetime, runs: Sequence[RunRow]
    ) -> Governance:
        a = self._accounts.c
        today = datetime.now(timezone.utc).date().isoformat()
        running = {
            f"run:{r.dag_id}/{r.run_id}": (r.dag_id, r.run_id)
            for r in runs
            if r.state in ("running", "queued")
        }
        with self.engine.connect() as conn:
            daily = conn.execute(
                select(self._accounts).where(a.kind.in_(["day", "module"]), a.key.like(f"%{today}"))
            ).all()
            run_rows = (
                conn.execute(select(a.key, a.budget_micros).where(a.key.in_(list(running)))).all()
                if running
                else []
            )
        budgets = tuple(
            Budget(
                account=r.key,
                budget_usd=r.budget_micros / MICROS,
                spent_usd=r.spent_micros / MICROS,
                reserved_usd=r.reserved_micros / MICROS,
            )
            for r in sorted(daily, key=lambda r: str(r.key))
        )
        return Governance(
            headroom=read_headroom(self._headroom),
            budgets=budgets,
            run_budgets={running[r[0]]: r[1] / MICROS for r in run_rows},
        )


def default_reader(url: str | None = None, headroom: HeadroomSource | None = None) -> GovernanceReader:
    """The ledger at ``url`` (default: the governance store), or NoGovernance when it has none."""
    from erp_agents.store import governance_url

    reader = LedgerReader.from_url(url or governance_url(), headroom)
    return reader if reader is not None else NoGovernance(headroom)


def deployment_reader() -> GovernanceReader:
    """The reader for this deployment: its ledger (or XComs) and its limiter's headroom."""
    from erp_agents.monitoring.config import engine_config
    from erp_agents.monitoring.headroom import LimiterHeadroom

    engine = engine_config()
    return reader_or_xcoms(engine.ledger.url, LimiterHeadroom(engine))


def reader_or_xcoms(url: str | None = None, headroom: HeadroomSource | None = None) -> GovernanceReader:
    """``default_reader``, or NoGovernance with a warning when the store cannot be reached: a status
    without ledger figures is still worth showing, and it says so (``cost_tracking.ledger_cost`` is null)."""
    try:
        return default_reader(url, headroom)
    except SQLAlchemyError as exc:
        log.warning("governance store unreachable, status falls back to XComs: %s", exc)
        return NoGovernance(headroom)
