"""Which budget accounts one agent's requests draw on, from the spec: agent, run, day, module-day."""

from __future__ import annotations

from datetime import UTC, date, datetime

from erp_agents.costs.ledger_types import Account
from erp_agents.costs.money import budget_micros
from erp_agents.spec.models import CostConfig


def accounts_for(
    *,
    dag_id: str,
    run_id: str,
    task_id: str,
    module: str,
    cost_limit: float | None,
    cost_budget: float | None,
    cost_config: CostConfig,
    map_index: int = -1,
    day: date | None = None,
) -> tuple[Account, ...]:
    """Every account with a budget that applies; an agent's limit spans all its tries in the run."""
    today = (day or datetime.now(UTC).date()).isoformat()
    agent = f"{task_id}[{map_index}]" if map_index >= 0 else task_id
    found: list[Account] = []
    if cost_limit is not None:
        found.append(Account(f"agent:{dag_id}/{run_id}/{agent}", budget_micros(cost_limit), "agent"))
    if cost_budget is not None:
        found.append(Account(f"run:{dag_id}/{run_id}", budget_micros(cost_budget), "run"))
    if cost_config.global_budget is not None:
        found.append(Account(f"day:{today}", budget_micros(cost_config.global_budget), "day"))
    if module in cost_config.module_budgets:
        found.append(Account(f"module:{module}:{today}", budget_micros(cost_config.module_budgets[module]), "module"))
    return tuple(found)
