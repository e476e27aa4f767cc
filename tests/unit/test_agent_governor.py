"""AgentGovernor inside GovernedModel: limits then budget per attempt, retries re-take both, nothing leaks.

Real stores (SQLite files), a FunctionModel for the provider; no processes.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic_ai import Agent as PydanticAgent
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import ModelResponse, TextPart
from pydantic_ai.models.function import FunctionModel
from pydantic_ai.usage import RequestUsage
from sqlalchemy import text

from erp_agents.contracts import AgentInvocation, Budgets, RunContext
from erp_agents.costs.ledger import Ledger
from erp_agents.costs.ledger_types import CallKey
from erp_agents.costs.record import CostRecord
from erp_agents.exceptions import BudgetExceededError, TransientAgentError
from erp_agents.governance import AgentGovernor, cost_config_of
from erp_agents.governed import GovernedModel
from erp_agents.limits.limiter import RateLimiter
from erp_agents.limits.sql_backend import SqlBackend
from erp_agents.spec.models import (
    Agent,
    LLMConfig,
    ModelPrice,
    ProviderConfig,
    RateLimitConfig,
    RetryPolicy,
    RetryStrategy,
)

PRICE = {"fn": ModelPrice(input=1.0, output=2.0)}  # USD per 1K tokens: big enough to see in micros
FAST_RETRIES = RetryPolicy(max_retries=3, strategy=RetryStrategy.FIXED_DELAY, base_delay=0.01, max_delay=0.01,
                           jitter=False)


def _invocation(cost_limit: float | None = None, rpm: int = 100) -> AgentInvocation:
    agent = Agent(name="a", module="Finance", llm_config=LLMConfig(model="fn", max_tokens=20), prompt_template="x",
                  cost_limit=cost_limit)
    return AgentInvocation(
        workflow="wf", task_id="finance.a", agent=agent, provider_name="p",
        provider=ProviderConfig(type="custom", factory="x"), price_overrides=PRICE, retry_policy=FAST_RETRIES,
        rate_limits=(("provider:p", RateLimitConfig(requests_per_minute=rpm, concurrent_requests=1)),),
        budgets=Budgets(agent_cost_limit=cost_limit, module="Finance"),
    )


@pytest.fixture
def stores(tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    limiter = RateLimiter(SqlBackend(f"sqlite:///{tmp_path / 'limits.db'}", namespace="t"), lease_s=30)
    return ledger, limiter


def _model(answer, invocation: AgentInvocation, ledger: Ledger, limiter: RateLimiter, record: CostRecord):
    run = RunContext(dag_id="wf", run_id="r1", task_id="finance.a")
    governor = AgentGovernor(invocation=invocation, run=run, record=record, cost_config=cost_config_of(
        invocation.budgets), limiter=limiter, ledger=ledger, deadline=time.monotonic() + 30)
    return GovernedModel(FunctionModel(answer, model_name="fn"), record=record, provider_type="custom",
                         price_overrides=invocation.price_table(), governor=governor,
                         retry_policy=invocation.retry_policy, deadline=time.monotonic() + 30)


def _record() -> CostRecord:
    return CostRecord(workflow="wf", agent="a", module="Finance", provider="p", model="fn")


def _calls(ledger: Ledger) -> list[tuple[int, str, int]]:
    with ledger.engine.connect() as conn:
        rows = conn.execute(text("SELECT call_no, state, actual_micros FROM erp_ledger_calls ORDER BY call_no")).all()
    return [(int(r[0]), str(r[1]), int(r[2] or 0)) for r in rows]


def test_a_transient_failure_is_retried_in_the_call_and_billed_once(stores):
    ledger, limiter = stores
    attempts = []

    def answer(messages, info):
        attempts.append(len(attempts) + 1)
        if len(attempts) < 3:
            raise ModelHTTPError(503, "fn", {"error": "overloaded"})
        return ModelResponse(parts=[TextPart("ok")], usage=RequestUsage(input_tokens=100, output_tokens=10))

    record = _record()
    model = _model(answer, _invocation(), ledger, limiter, record)
    assert asyncio.run(PydanticAgent(model).run("go")).output == "ok"
    assert (record.calls, record.failed_calls, record.retries) == (1, 2, 2)
    # Every attempt had its own reservation; the two failed ones were released, the third settled.
    assert _calls(ledger) == [(1, "released", 0), (2, "released", 0), (3, "settled", 120_000)]
    assert ledger.spend(dag_id="wf").total_micros == 120_000  # (100 x $1.0 + 10 x $2.0) per 1K tokens = $0.12


def test_a_trigger_started_again_for_the_same_try_is_charged_for_its_own_requests(stores):
    """A restarted triggerer hands the trigger to another one, which runs the agent again under the same
    try number: the provider bills both executions, so the ledger keeps both charges, each once."""
    ledger, limiter = stores

    def answer(messages, info):
        return ModelResponse(parts=[TextPart("ok")], usage=RequestUsage(input_tokens=100, output_tokens=10))

    first = _model(answer, _invocation(), ledger, limiter, _record())
    assert asyncio.run(PydanticAgent(first).run("go")).output == "ok"
    # An earlier execution that died while its request was in flight leaves a hold on the next key.
    held = asyncio.run(ledger.reserve(CallKey("wf", "r1", "finance.a", -1, 1, 2), [], 500_000))
    again = _model(answer, _invocation(), ledger, limiter, _record())
    assert asyncio.run(PydanticAgent(again).run("go")).output == "ok"
    assert _calls(ledger) == [(1, "settled", 120_000), (2, "held", 0), (3, "settled", 120_000)]
    assert ledger.spend(dag_id="wf").total_micros == 240_000
    asyncio.run(ledger.release(held))
    # A replay of a settled key inside one execution is still one charge.
    replay = asyncio.run(ledger.reserve(CallKey("wf", "r1", "finance.a", -1, 1, 3), [], 1))
    assert replay.existing and replay.settled


def test_a_request_over_the_agents_cost_limit_is_refused_before_it_is_sent(stores):
    ledger, limiter = stores
    sent = []

    def answer(messages, info):
        sent.append(1)
        return ModelResponse(parts=[TextPart("ok")], usage=RequestUsage(input_tokens=1, output_tokens=1))

    record = _record()
    # Worst case: prompt estimate + 20 output tokens at $2/1K = at least $0.04; the limit is $0.01.
    model = _model(answer, _invocation(cost_limit=0.01), ledger, limiter, record)
    with pytest.raises(BudgetExceededError, match="budget of agent:wf/r1/finance.a exceeded"):
        asyncio.run(PydanticAgent(model).run("go"))
    assert sent == [] and record.retries == 0  # permanent: no retry, nothing reached the provider


def test_retries_give_up_with_the_providers_words_and_leak_no_slot(stores):
    ledger, limiter = stores

    def answer(messages, info):
        raise ModelHTTPError(500, "fn", {"error": "boom"})

    record = _record()
    model = _model(answer, _invocation(), ledger, limiter, record)
    with pytest.raises(TransientAgentError, match="gave up after 4 attempt"):
        asyncio.run(PydanticAgent(model).run("go"))
    assert [state for _, state, _ in _calls(ledger)] == ["released"] * 4
    # The concurrency tier allows 1: a leaked slot would make this second agent wait until its deadline.
    ok = _model(lambda m, i: ModelResponse(parts=[TextPart("ok")], usage=RequestUsage(input_tokens=1,
                                                                                      output_tokens=1)),
                _invocation(), ledger, limiter, _record())
    assert asyncio.run(asyncio.wait_for(PydanticAgent(ok).run("go"), 10)).output == "ok"


def test_the_agent_timeout_ends_a_hung_request_and_releases_its_slot_and_reservation(stores, monkeypatch):
    from erp_agents.contracts import RunContext
    from erp_agents.exceptions import AgentTimeoutError
    from erp_agents.triggers import runner

    ledger, limiter = stores
    invocation = _invocation().model_copy(update={"agent": _invocation().agent.model_copy(update={"timeout": 3.0})})
    run = RunContext(dag_id="wf", run_id="r1", task_id="finance.a")
    record = _record()
    governor = AgentGovernor(invocation=invocation, run=run, record=record, cost_config=cost_config_of(
        invocation.budgets), limiter=limiter, ledger=ledger, deadline=None)

    async def hang(messages, info):
        await asyncio.sleep(30)

    async def no_hook_run(invocation, run, upstream, record, *, log, governor, deadline, **_):
        model = GovernedModel(FunctionModel(hang, model_name="fn"), record=record, provider_type="custom",
                              price_overrides=invocation.price_table(), governor=governor,
                              retry_policy=invocation.retry_policy, deadline=deadline)
        return (await PydanticAgent(model).run("go")).output

    monkeypatch.setattr(runner, "_run_agent", no_hook_run)
    started = time.monotonic()
    with pytest.raises(AgentTimeoutError, match="reached its timeout of 3 s after 0 call"):
        asyncio.run(runner.run_agent(invocation, run, {}, record, log=runner.logging.getLogger("t"), governor=governor))
    assert time.monotonic() - started < 15
    assert [state for _, state, _ in _calls(ledger)] == ["released"]  # the cancelled request's hold is freed
    ok = _model(lambda m, i: ModelResponse(parts=[TextPart("ok")], usage=RequestUsage(input_tokens=1,
                                                                                      output_tokens=1)),
                _invocation(), ledger, limiter, _record())
    assert asyncio.run(asyncio.wait_for(PydanticAgent(ok).run("go"), 10)).output == "ok"  # the slot is free again


def test_the_limiter_and_the_ledger_settle_side_by_side_and_a_failure_of_one_skips_neither():
    """Each waits for the other here: settled one after the other, this would never finish."""
    from erp_agents.costs.record import RequestCost
    from erp_agents.governance import Permit

    both_started = asyncio.Barrier(2)
    done: list[str] = []

    class Limiter:
        async def settle(self, lease, used):
            await both_started.wait()
            done.append("limiter")

        async def release(self, lease, *, sent):
            await both_started.wait()
            done.append("limiter released")
            raise RuntimeError("limiter store down")

    class Ledger:
        async def settle(self, reservation, micros, detail):
            await both_started.wait()
            done.append("ledger")

        async def release(self, reservation):
            await both_started.wait()
            done.append("ledger released")

    invocation = _invocation()
    governor = AgentGovernor(invocation=invocation, run=RunContext(dag_id="wf", run_id="r1", task_id="finance.a"),
                             record=_record(), cost_config=cost_config_of(invocation.budgets), limiter=Limiter(),
                             ledger=Ledger())
    from erp_agents.governed import RequestEstimate

    estimate = RequestEstimate(workflow="wf", agent="a", module="Finance", provider_name="p", model="fn",
                               prompt_tokens=1, max_output_tokens=20, call_number=1, priority=5, message_count=1)
    permit = Permit(lease=object(), reservation=object(), estimate=estimate)  # type: ignore[arg-type]
    cost = RequestCost(model="fn", input_tokens=1, output_tokens=1, cache_read_tokens=0, cost_usd=0.0, cost_micros=0,
                       latency_s=0.1)

    async def run():
        await asyncio.wait_for(governor.settle(permit, cost), 5)
        with pytest.raises(RuntimeError, match="limiter store down"):
            await asyncio.wait_for(governor.release(permit, RuntimeError("provider")), 5)

    asyncio.run(run())
    assert sorted(done) == ["ledger", "ledger released", "limiter", "limiter released"]


def test_a_ledger_without_a_url_follows_the_governance_store_the_process_is_given(tmp_path, monkeypatch):
    from erp_agents.governance import ledger_for
    from erp_agents.spec.models import LedgerConfig
    from erp_agents.store import GOVERNANCE_URL_ENV

    default = LedgerConfig()
    monkeypatch.setenv(GOVERNANCE_URL_ENV, f"sqlite:///{tmp_path / 'first.db'}")
    first = ledger_for(default)
    assert ledger_for(LedgerConfig()) is first  # one pool per store
    monkeypatch.setenv(GOVERNANCE_URL_ENV, f"sqlite:///{tmp_path / 'second.db'}")
    second = ledger_for(default)
    assert second is not first and str(second.engine.url).endswith("second.db")
    assert ledger_for(LedgerConfig(url=f"sqlite:///{tmp_path / 'own.db'}")) not in (first, second)
