"""One run's money from the ledger (every try) next to what its XCom cost records say (last try)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from erp_agents.costs.ledger import Ledger
from erp_agents.costs.money import micros_to_usd, usd_to_micros

CENT_MICROS = 10_000


@dataclass(frozen=True)
class RunCosts:
    total_micros: int
    by_agent: dict[str, int]
    by_module: dict[str, int]
    by_model: dict[str, int]
    last_try_by_agent: dict[str, int]
    mismatches: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)  # agent -> (ledger, xcom)

    @property
    def total_usd(self) -> Decimal:
        return micros_to_usd(self.total_micros)


def run_costs(ledger: Ledger, dag_id: str, run_id: str, xcom_usd: Mapping[str, Decimal] | None = None) -> RunCosts:
    """Sum a run's charges by agent (task id), module and model; compare each agent's last try with its
    XCom record to the cent (XCom loses earlier tries when Airflow retries a task)."""
    by: dict[str, defaultdict[str, int]] = {k: defaultdict(int) for k in ("agent", "module", "model")}
    last_try: dict[str, tuple[int, int]] = {}
    total = 0
    for charge in ledger.charges(dag_id, run_id):
        agent, micros = charge.key.task_id, charge.actual_micros
        total += micros
        by["agent"][agent] += micros
        by["module"][charge.detail.module] += micros
        by["model"][charge.detail.model] += micros
        seen_try, seen = last_try.get(agent, (0, 0))
        if charge.key.try_number > seen_try:
            last_try[agent] = (charge.key.try_number, micros)
        elif charge.key.try_number == seen_try:
            last_try[agent] = (seen_try, seen + micros)
    last = {agent: micros for agent, (_, micros) in last_try.items()}
    mismatches = {
        agent: (micros_to_usd(last.get(agent, 0)), Decimal(str(usd)))
        for agent, usd in (xcom_usd or {}).items()
        if abs(last.get(agent, 0) - usd_to_micros(Decimal(str(usd)))) >= CENT_MICROS
    }
    return RunCosts(total, dict(by["agent"]), dict(by["module"]), dict(by["model"]), last, mismatches)
