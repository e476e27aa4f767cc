"""Read-only views of the ledger: spend summed several ways, and one run's charges."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine, func, select

from erp_agents.costs.ledger_tables import calls
from erp_agents.costs.ledger_types import CallKey, Charge, ChargeDetail, SpendReport


def _filters(dag_id: str | None, run_id: str | None) -> list[Any]:
    where: list[Any] = []
    if dag_id is not None:
        where.append(calls.c.dag_id == dag_id)
    if run_id is not None:
        where.append(calls.c.run_id == run_id)
    return where


def spend_of(
    engine: Engine, *, dag_id: str | None = None, run_id: str | None = None, since: datetime | None = None
) -> SpendReport:
    """Settled spend grouped in SQL by workflow, agent, module, model and day; in-flight holds beside it."""
    where = _filters(dag_id, run_id)
    settled = [*where, calls.c.state == "settled"]
    if since is not None:
        settled.append(calls.c.settled_at >= since.timestamp())
    c = calls.c
    grouped = (
        select(
            c.dag_id, c.task_id, c.module, c.model, c.day,
            func.sum(c.actual_micros), func.count(), func.sum(c.input_tokens), func.sum(c.output_tokens),
        )
        .where(*settled)
        .group_by(c.dag_id, c.task_id, c.module, c.model, c.day)
    )
    in_flight = select(func.coalesce(func.sum(c.reserved_micros), 0)).where(*where, c.state == "held")
    expired = select(func.count()).where(*where, c.state == "expired")
    sums: dict[str, defaultdict[str, int]] = {k: defaultdict(int) for k in ("wf", "agent", "module", "model", "day")}
    total = n_calls = tokens_in = tokens_out = 0
    with engine.connect() as conn:
        for row in conn.execute(grouped):
            values: tuple[Any, ...] = tuple(row)
            dag, task, module, model, day, micros, n, t_in, t_out = values
            micros = int(micros or 0)
            total += micros
            n_calls += int(n)
            tokens_in += int(t_in or 0)
            tokens_out += int(t_out or 0)
            sums["wf"][dag] += micros
            sums["agent"][f"{dag}/{task}"] += micros
            sums["module"][module or ""] += micros
            sums["model"][model or ""] += micros
            sums["day"][day or ""] += micros
        held = int(conn.execute(in_flight).scalar_one())
        n_expired = int(conn.execute(expired).scalar_one())
    return SpendReport(
        total_micros=total, calls=n_calls, input_tokens=tokens_in, output_tokens=tokens_out,
        in_flight_micros=held, expired_calls=n_expired,
        by_workflow=dict(sums["wf"]), by_agent=dict(sums["agent"]), by_module=dict(sums["module"]),
        by_model=dict(sums["model"]), by_day=dict(sums["day"]),
    )


def charges_of(engine: Engine, dag_id: str, run_id: str) -> list[Charge]:
    """Every settled request of one run, every try included, in call order."""
    stmt = (
        select(calls)
        .where(*_filters(dag_id, run_id), calls.c.state == "settled")
        .order_by(calls.c.task_id, calls.c.map_index, calls.c.try_number, calls.c.call_no)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    out = []
    for r in rows:
        key = CallKey(*json.loads(r.call_key))
        detail = ChargeDetail(
            model=r.model or "", provider=r.provider or "", module=r.module or "",
            input_tokens=r.input_tokens or 0, output_tokens=r.output_tokens or 0,
            cached_tokens=r.cached_tokens or 0, cache_write_tokens=r.cache_write_tokens or 0,
            price_source=r.price_source or "", price_date=date.fromisoformat(r.price_date) if r.price_date else None,
            latency_s=r.latency_s or 0.0, retries=r.retries or 0, limiter_wait_s=r.limiter_wait_s or 0.0,
        )
        out.append(Charge(key, int(r.actual_micros or 0), r.day or "", detail))
    return out
