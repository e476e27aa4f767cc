"""CostHook: a run's costs from the ledger, for operators and the summary (logic in run_costs)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from functools import cached_property

from airflow.sdk import BaseHook

from erp_agents.costs.ledger import Ledger
from erp_agents.costs.run_costs import RunCosts, run_costs
from erp_agents.store import governance_url


class CostHook(BaseHook):
    """Reads the cost ledger of the governance store (or ``ledger_url``)."""

    hook_name = "erp_agents cost ledger"

    def __init__(self, ledger_url: str | None = None) -> None:
        super().__init__()
        self.ledger_url = ledger_url

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.ledger_url or governance_url())

    def get_run_costs(self, dag_id: str, run_id: str, xcom_usd: Mapping[str, Decimal] | None = None) -> RunCosts:
        return run_costs(self.ledger, dag_id, run_id, xcom_usd)
