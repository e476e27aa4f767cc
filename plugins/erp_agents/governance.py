"""AgentGovernor: the rate limiter and the cost ledger around every model request of one agent.

Limits first, then money: waiting for a rate-limit slot holds no budget, so the budget is never
left idle behind a queue. The budget reservation is all or nothing across the agent, run, day and
module accounts; when it is refused, the limiter's slot goes back unsent. After the call the real
tokens settle in the limiter and the real cost in the ledger; a failed call releases both (the
limiter keeps the counts of a request the provider may have counted).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import anyio
import httpx

from erp_agents.costs.accounts import accounts_for
from erp_agents.costs.ledger_types import Account, CallKey, ChargeDetail, Reservation
from erp_agents.costs.pricing import worst_case_micros
from erp_agents.costs.ledger import Ledger
from erp_agents.governed import RequestEstimate, RequestGovernor
from erp_agents.limits.limiter import Lease, RateLimiter, limiter_for
from erp_agents.limits.tiers import Tier, tiers_for
from erp_agents.spec.models import CostConfig, LedgerConfig
from erp_agents.store import governance_url

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from erp_agents.contracts import AgentInvocation, Budgets, RunContext
    from erp_agents.costs.record import CostRecord, RequestCost

# What a request without max_tokens may answer at most: the runner sends this bound to the provider,
# so the worst case the limiter and the ledger reserve is a real one.
DEFAULT_MAX_OUTPUT_TOKENS = 4096
# Call numbers of one fan-out item start at (item index + 1) x this stride, so the items of one
# mapped task never share a ledger key: one item makes at most (tool rounds + 1) x attempts calls.
ITEM_CALL_STRIDE = 100_000


def item_call_base(item_index: int) -> int:
    """The first call number of item ``item_index`` (0-based, over the whole list) minus one."""
    return (item_index + 1) * ITEM_CALL_STRIDE


def ledger_for(config: LedgerConfig) -> Ledger:
    """One ledger (one connection pool) per process per store and reservation TTL.

    A config without a URL means the governance store, resolved on every call as ``limiter_for``
    does: a ledger cached under the config alone kept writing to the first store this process saw.
    """
    return _ledger_at(config.url or governance_url(), config.reservation_ttl_seconds)


@lru_cache(maxsize=None)
def _ledger_at(url: str, reservation_ttl_s: float) -> Ledger:
    return Ledger(url, reservation_ttl_s=reservation_ttl_s)


def cost_config_of(budgets: Budgets) -> CostConfig:
    """The daily budgets an invocation carries, in the shape the accounts are built from."""
    modules = {budgets.module: budgets.module_budget} if budgets.module_budget is not None else {}
    return CostConfig(global_budget=budgets.global_budget, module_budgets=modules)


def governor_for(
    invocation: AgentInvocation, run: RunContext, record: CostRecord, *, deadline: float | None, call_base: int = 0
) -> RequestGovernor:
    """The agent's governor: the limiter when it has limits, and always the ledger, money's source of
    truth (with no budget its reservations refuse nothing, but every settled cost is kept)."""
    return AgentGovernor(
        invocation=invocation,
        run=run,
        record=record,
        cost_config=cost_config_of(invocation.budgets),
        limiter=limiter_for(invocation.limiter) if invocation.rate_limits else None,
        ledger=ledger_for(invocation.ledger),
        deadline=deadline,
        call_base=call_base,
    )


@dataclass(frozen=True)
class Permit:
    """What one admitted request holds: a limiter lease and a budget reservation (either may be absent)."""

    lease: Lease | None
    reservation: Reservation | None
    estimate: RequestEstimate


def _was_sent(error: BaseException) -> bool:
    """A request that never left this host cannot have been counted by the provider."""
    return not isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout, asyncio.CancelledError))


async def _both(steps: list[Coroutine[Any, Any, None]]) -> None:
    """The limiter and the ledger settle (or release) side by side: two stores, two transactions, and
    each one's batch waits for its own store only. One that fails never stops the other; its error
    is raised once both are done."""
    outcomes = await asyncio.gather(*steps, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


class AgentGovernor:
    """The RequestGovernor of one agent attempt: its tiers, its accounts, its call keys."""

    def __init__(
        self,
        *,
        invocation: AgentInvocation,
        run: RunContext,
        record: CostRecord,
        cost_config: CostConfig,
        limiter: RateLimiter | None,
        ledger: Ledger | None,
        deadline: float | None = None,
        call_base: int = 0,
    ) -> None:
        self.invocation = invocation
        self.call_base = call_base
        self.run = run
        self.record = record
        self.limiter = limiter
        self.ledger = ledger
        self.deadline = deadline
        self.tiers: tuple[Tier, ...] = tiers_for(invocation.rate_limits)
        self.accounts: tuple[Account, ...] = accounts_for(
            dag_id=run.dag_id,
            run_id=run.run_id,
            task_id=run.task_id or invocation.task_id,
            module=invocation.agent.module,
            cost_limit=invocation.budgets.agent_cost_limit,
            cost_budget=invocation.budgets.workflow_cost_budget,
            cost_config=cost_config,
            map_index=run.map_index,
        )

    def call_key(self, call_number: int) -> CallKey:
        run = self.run
        return CallKey(run.dag_id, run.run_id, run.task_id or self.invocation.task_id, run.map_index,
                       run.try_number, self.call_base + call_number)

    async def acquire(self, estimate: RequestEstimate) -> Permit:
        max_out = estimate.max_output_tokens or DEFAULT_MAX_OUTPUT_TOKENS
        lease = None
        if self.limiter is not None and self.tiers:
            lease = await self.limiter.acquire(
                self.tiers,
                tokens=estimate.prompt_tokens + max_out,
                priority=estimate.priority,
                holder=f"{self.run.dag_id}/{self.run.run_id}/{self.invocation.task_id}",
                deadline=self.deadline,
            )
            self.record.limiter_wait_s = round(self.record.limiter_wait_s + lease.wait_s, 6)
        reservation = None
        if self.ledger is not None:
            try:
                worst = worst_case_micros(
                    estimate.model, self.invocation.provider.type, self.invocation.price_table(),
                    estimate.prompt_tokens, max_out,
                )
                reservation = await self._reserve_new(estimate.call_number, worst)
            except BaseException:
                if lease is not None and self.limiter is not None:
                    with anyio.CancelScope(shield=True):  # a cancelled reserve must not keep the slot
                        await self.limiter.release(lease, sent=False)
                raise
        return Permit(lease, reservation, estimate)

    async def _reserve_new(self, call_number: int, worst_micros: int) -> Reservation:
        """Reserve under a key no earlier execution of this task try has used.

        Within one execution a call number is reserved again only after its release (a retried
        request). A key that is already held or settled therefore belongs to an earlier execution of
        the same try: a triggerer that was restarted or killed, after which Airflow starts the trigger
        again on another one. Its charge stands (or its hold expires); this request is a new one that
        the provider bills again, so it takes the next free call number instead of replaying the old
        key, whose settle would then record nothing."""
        assert self.ledger is not None
        while True:
            key = self.call_key(call_number)
            reservation = await self.ledger.reserve(key, self.accounts, worst_micros)
            if not reservation.existing:
                return reservation
            log.info("Ledger key %s was used by an earlier execution of this task try; the request takes "
                     "call number %d", key.text(), key.call + 1)
            self.call_base += 1

    async def settle(self, permit: Permit, cost: RequestCost) -> None:
        steps = []
        if permit.lease is not None and self.limiter is not None:
            steps.append(self.limiter.settle(permit.lease, self._counted_tokens(permit, cost)))
        if permit.reservation is not None and self.ledger is not None:
            steps.append(self.ledger.settle(permit.reservation, cost.cost_micros, self._detail(cost)))
        await _both(steps)

    async def release(self, permit: Permit, error: BaseException) -> None:
        steps = []
        if permit.reservation is not None and self.ledger is not None:
            steps.append(self.ledger.release(permit.reservation))
        if permit.lease is not None and self.limiter is not None:
            steps.append(self.limiter.release(permit.lease, sent=_was_sent(error)))
        await _both(steps)

    def _counted_tokens(self, permit: Permit, cost: RequestCost) -> int:
        """Tokens the provider's limit counts: Anthropic counts what was used; OpenAI and compatible
        servers count the prompt plus the ``max_tokens`` asked for, whatever the answer's length."""
        if self.invocation.provider.type == "anthropic":
            return cost.input_tokens + cost.output_tokens
        return cost.input_tokens + (permit.estimate.max_output_tokens or DEFAULT_MAX_OUTPUT_TOKENS)

    def _detail(self, cost: RequestCost) -> ChargeDetail:
        return ChargeDetail(
            model=cost.model,
            provider=self.invocation.provider_name,
            module=self.invocation.agent.module,
            input_tokens=cost.input_tokens,
            output_tokens=cost.output_tokens,
            cached_tokens=cost.cache_read_tokens,
            cache_write_tokens=cost.cache_write_tokens,
            price_source=self.record.price_source,
            latency_s=cost.latency_s,
            retries=self.record.retries,
            limiter_wait_s=self.record.limiter_wait_s,
        )
