"""Values the ledger takes and returns; frozen, JSON-able, free of SQL."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date

from erp_agents.costs.money import format_usd
from erp_agents.exceptions import BudgetExceededError, GovernanceStoreUnavailable

__all__ = [
    "Account", "AccountState", "BudgetExceededError", "CallKey", "Charge", "ChargeDetail",
    "GovernanceStoreUnavailable", "Reservation", "SpendReport", "budget_exceeded",
]


def budget_exceeded(account: str, budget: int, spent: int, reserved: int, asked: int) -> BudgetExceededError:
    """The refusal, naming the account, its budget, what is spent and reserved, and what was asked."""
    return BudgetExceededError(
        f"budget of {account} exceeded: budget {format_usd(budget)}, spent {format_usd(spent)}, "
        f"reserved {format_usd(reserved)}, asked {format_usd(asked)}"
    )


@dataclass(frozen=True, order=True)
class CallKey:
    """One model request: the same key is the same request, however often it is reserved or settled."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1
    try_number: int = 1
    call: int = 1

    def text(self) -> str:
        """Unambiguous text form, whatever characters the ids contain."""
        return json.dumps([self.dag_id, self.run_id, self.task_id, self.map_index, self.try_number, self.call])


@dataclass(frozen=True)
class Account:
    """A budget that calls draw on: ``agent:<dag>/<run>/<task>``, ``run:<dag>/<run>``, ``day:<date>``,
    ``module:<module>:<date>``."""

    key: str
    budget_micros: int
    kind: str

    def __post_init__(self) -> None:
        if self.budget_micros <= 0:
            raise ValueError(f"account {self.key}: budget must be positive, got {self.budget_micros}")


@dataclass(frozen=True)
class Reservation:
    """Money held for one request in flight. ``existing`` when the key was already held or settled
    (a replay of the same request: nothing new was held); ``settled`` when it was already settled."""

    key: CallKey
    accounts: tuple[str, ...]
    amount_micros: int
    expires_at: float
    settled: bool = False
    existing: bool = False


@dataclass(frozen=True)
class ChargeDetail:
    """What a settled request used, as the provider reported it."""

    model: str
    provider: str = ""
    module: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    price_source: str = ""
    price_date: date | None = None
    latency_s: float = 0.0
    retries: int = 0
    limiter_wait_s: float = 0.0


@dataclass(frozen=True)
class Charge:
    """One settled request as the ledger holds it."""

    key: CallKey
    actual_micros: int
    day: str
    detail: ChargeDetail


@dataclass(frozen=True)
class AccountState:
    key: str
    kind: str
    budget_micros: int
    spent_micros: int
    reserved_micros: int

    @property
    def remaining_micros(self) -> int:
        return self.budget_micros - self.spent_micros - self.reserved_micros


@dataclass(frozen=True)
class SpendReport:
    """Settled spend, summed several ways; every amount in micro-dollars."""

    total_micros: int = 0
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    in_flight_micros: int = 0
    expired_calls: int = 0
    by_workflow: dict[str, int] = field(default_factory=dict)
    by_agent: dict[str, int] = field(default_factory=dict)  # "<dag_id>/<task_id>"
    by_module: dict[str, int] = field(default_factory=dict)
    by_model: dict[str, int] = field(default_factory=dict)
    by_day: dict[str, int] = field(default_factory=dict)
