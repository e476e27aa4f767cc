"""Rate limits, budgets and in-call retries under the real scheduler and triggerer, each judged by
an independent server: the simulator's own log of admitted and rejected requests.

All three run on the session's one embedded deployment; each test has a simulator and a connection
of its own (tests/e2e/conftest.py), and a limiter namespace of its own so that windows other tests
filled on the shared governance store do not count here.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from erp_agents import Agent, EngineConfig, RetryPolicy, Workflow, WorkflowStatus
from erp_agents.costs.record import COST_XCOM_KEY
from erp_agents.engine import OrchestrationEngine
from erp_agents.spec.loader import load_spec_file
from erp_agents.spec.models import CostConfig, LimiterConfig, ModelPrice, ProviderConfig, RateLimitConfig
from erp_agents.stack.demo import peak_in_flight
from erp_agents.xcom import cost_record_from_xcom
from tests.conftest import ROOT
from tests.e2e.conftest import (
    BUDGET_CONN,
    FAULT_CONN,
    RATE_CONCURRENT,
    RATE_CONN,
    RATE_RPM,
    RATE_WINDOW_S,
)
from tests.e2e.helpers import expected_cost

RUN_TIMEOUT_S = 300


def _engine_config(conn_id: str, limits: RateLimitConfig | None = None, **fields: Any) -> EngineConfig:
    """One OpenAI provider on ``conn_id``; a fresh limiter namespace (see the module docstring)."""
    provider = ProviderConfig(type="openai", conn_id=conn_id, rate_limit_config=limits)
    namespace = f"e2e_{uuid.uuid4().hex[:12]}"
    return EngineConfig(providers={"openai": provider}, limiter=LimiterConfig(namespace=namespace), **fields)


@pytest.fixture
def engine_for(deployment) -> Iterator[Any]:
    """Engines on the shared deployment; the connections are already in the triggerer's environment."""
    opened: list[OrchestrationEngine] = []

    def make(config: EngineConfig) -> OrchestrationEngine:
        engine = OrchestrationEngine(config, home=deployment.home, run_timeout=RUN_TIMEOUT_S)
        opened.append(engine)
        return engine

    yield make
    for engine in opened:
        engine.close()
    assert deployment.status().running


@pytest.fixture
def ledger_db(deployment) -> Iterator[Any]:
    """The deployment's governance store, where the ledger keeps its calls and accounts."""
    db = create_engine(deployment.layout.read_state().governance_url)
    yield db
    db.dispose()


def _ledger_calls(db: Any, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    with db.connect() as conn:
        rows = conn.execute(
            text("SELECT state, actual_micros, reserved_micros, try_number FROM erp_ledger_calls "
                 "WHERE dag_id = :d AND run_id = :r"),
            {"d": dag_id, "r": run_id},
        ).mappings().all()
    return [dict(row) for row in rows]


def _busiest_window(times: list[float], window: float) -> int:
    """Most entries in any half-open window [t, t + window) that starts at an entry."""
    times = sorted(times)
    best, j = 0, 0
    for i, start in enumerate(times):
        j = max(j, i)
        while j < len(times) and times[j] < start + window:
            j += 1
        best = max(best, j - i)
    return best


def _task_instances(engine: OrchestrationEngine, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    return engine.api.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=1000)["task_instances"]


def _cost_records(engine: OrchestrationEngine, dag_id: str, run_id: str, task_ids: list[str]) -> dict[str, Any]:
    return {t: cost_record_from_xcom(engine.api.xcom(dag_id, run_id, t, COST_XCOM_KEY)) for t in task_ids}


def _agent(name: str, prompt: str, max_tokens: int) -> Agent:
    return Agent(name=name, module="Finance", prompt_template=prompt,
                 llm_config={"model": "gpt-4o-mini", "max_tokens": max_tokens})


# -- 1. rate limits --------------------------------------------------------------------------------


def test_forty_five_agents_use_nearly_all_of_a_rate_limit_and_never_exceed_it(engine_for, rate_simulator):
    """30 requests per minute and 5 at once, set in the engine config and enforced by the server per
    key: every request is admitted, the busiest minute holds 27 to 30 of them."""
    sim = rate_simulator
    sim.reset()
    limits = RateLimitConfig(requests_per_minute=RATE_RPM, requests_per_hour=None, requests_per_day=None,
                             tokens_per_minute=1_000_000, concurrent_requests=RATE_CONCURRENT)
    engine = engine_for(_engine_config(RATE_CONN, limits))
    agents = [_agent(f"rate_{i:02d}", f"Check invoice batch {i:02d}.", 60) for i in range(45)]
    workflow_id = engine.register_workflow(Workflow(name="governance_rate_limits", agents=agents,
                                                    max_parallel_agents=45))
    started = time.monotonic()
    result = engine.execute_workflow(workflow_id)
    wall = time.monotonic() - started

    requests = sim.requests()
    rejected = [r for r in requests if r.get("limited_by")]
    admitted = [r for r in requests if r.get("admitted")]
    busiest = _busiest_window([r["ts_start"] for r in admitted], RATE_WINDOW_S)
    print(f"\nrate limits: wall {wall:.1f} s, {len(admitted)} admitted, {len(rejected)} rejected, "
          f"busiest {RATE_WINDOW_S:.0f} s window {busiest}, peak in flight {peak_in_flight(requests)}, "
          f"server peak {sim.stats()['peak_in_flight']}")
    assert result.status is WorkflowStatus.COMPLETED, result.reason
    assert all(a.succeeded for a in result.agent_results.values()) and len(result.agent_results) == 45
    assert rejected == [], [(r["ts_start"], r["limited_by"]) for r in rejected]
    assert len(admitted) == 45 and {r["status"] for r in admitted} == {200}
    assert RATE_RPM - 3 <= busiest <= RATE_RPM, busiest
    assert peak_in_flight(requests) <= RATE_CONCURRENT
    assert sim.stats()["peak_in_flight"] <= RATE_CONCURRENT  # counted at the server's door, rejected ones too


# -- 2. budget race --------------------------------------------------------------------------------

# Prices the engine config sets (USD per 1K tokens), so a call costs about $0.12 and a cent of
# disagreement between the ledger and the server would show. Each agent reserves its prompt plus
# max_tokens (about $0.25) and settles what the server counted.
PRICE = ModelPrice(input=0.5, output=1.5)
BUDGET_MAX_TOKENS = 120
BUDGET_PROMPT = "Reconcile batch {i:02d}. " + "Match each open item on the bank statement to its ledger entry. " * 9
BUDGET_AGENTS = 40
BUDGET = 1.65  # about a third of what the 40 agents cost ($0.1235 each, measured on the simulator)


def _price_of(entry: dict[str, Any]) -> Decimal:
    usage = entry["usage"]
    return (Decimal(usage["input_tokens"]) * Decimal(str(PRICE.input))
            + Decimal(usage["output_tokens"]) * Decimal(str(PRICE.output))) / 1000


def test_forty_agents_race_for_a_third_of_their_cost_and_never_overrun_it(engine_for, budget_simulator, ledger_db):
    sim = budget_simulator
    sim.reset()
    unlimited = RateLimitConfig(requests_per_minute=None, requests_per_hour=None, requests_per_day=None,
                                tokens_per_minute=None, concurrent_requests=None)
    config = _engine_config(BUDGET_CONN, unlimited, cost_config=CostConfig(model_costs={"gpt-4o-mini": PRICE}))
    engine = engine_for(config)
    agents = [_agent(f"budget_{i:02d}", BUDGET_PROMPT.format(i=i), BUDGET_MAX_TOKENS) for i in range(BUDGET_AGENTS)]
    workflow = Workflow(name="governance_budget_race", agents=agents, max_parallel_agents=BUDGET_AGENTS,
                        cost_budget=BUDGET, allow_partial_completion=False)
    workflow_id = engine.register_workflow(workflow)
    started = time.monotonic()
    result = engine.execute_workflow(workflow_id)
    wall = time.monotonic() - started

    served = [r for r in sim.requests() if r["status"] == 200]
    server_spend = sum((_price_of(r) for r in served), Decimal(0))
    calls = _ledger_calls(ledger_db, workflow_id, result.run_id)
    settled = [c for c in calls if c["state"] == "settled"]
    ledger_spend = Decimal(sum(c["actual_micros"] for c in settled)) / 1_000_000
    succeeded = [a for a in result.agent_results.values() if a.succeeded]
    refused = [a for a in result.agent_results.values() if not a.succeeded]
    records = _cost_records(engine, workflow_id, result.run_id, [a.task_id for a in refused])
    print(f"\nbudget race: wall {wall:.1f} s, budget ${BUDGET:.2f}, server spend ${server_spend:.6f}, "
          f"ledger ${ledger_spend:.6f}, {len(succeeded)} succeeded, {len(refused)} refused, "
          f"headroom {(Decimal(str(BUDGET)) - server_spend) / Decimal(str(BUDGET)):.1%}, "
          f"per call ${server_spend / max(len(served), 1):.4f}; {result.reason}")

    assert server_spend <= Decimal(str(BUDGET)), server_spend
    assert abs(ledger_spend - server_spend) < Decimal("0.01"), (ledger_spend, server_spend)
    assert len(settled) == len(served) == len(succeeded)
    assert BUDGET_AGENTS // 6 <= len(succeeded) <= BUDGET_AGENTS // 2, len(succeeded)
    for agent in refused:
        record = records[agent.task_id]
        assert record is not None and record.error_type == "BudgetExceededError", (agent.name, record)
        assert "budget" in (record.error or "") and record.calls == 0, record.error
        row = result.summary["per_agent"][agent.task_id]
        assert row["error_type"] == "BudgetExceededError", row
    assert result.status is WorkflowStatus.FAILED
    assert result.summary["ended_by"] == "budget" and "budget ended the run" in result.reason, result.reason
    assert [c for c in calls if c["state"] == "held"] == []
    with ledger_db.connect() as conn:
        account = conn.execute(text("SELECT spent_micros, reserved_micros FROM erp_ledger_accounts WHERE key = :k"),
                               {"k": f"run:{workflow_id}/{result.run_id}"}).mappings().one()
    assert account["reserved_micros"] == 0 and account["spent_micros"] == sum(c["actual_micros"] for c in settled)
    # A budget refusal is final: no Airflow task retry started the refused agents again, and they ended
    # in the triggerer (no worker process: a worker-run try records its pid).
    instances = _task_instances(engine, workflow_id, result.run_id)
    assert {ti["try_number"] for ti in instances} == {1}
    refused_ids = {a.task_id for a in refused}
    assert [ti["task_id"] for ti in instances if ti["task_id"] in refused_ids and ti.get("pid")] == []


# -- 3. transient faults ---------------------------------------------------------------------------

# erp_nightly's own retry policy waits 10 s to 120 s between attempts; the test keeps its shape
# (exponential with jitter) at delays that fit a test run, and enough attempts that a 20 % fault
# rate exhausts none of them (0.2 ** 7 per request).
FAST_RETRIES = RetryPolicy(max_retries=6, strategy="exponential_backoff", base_delay=0.5, max_delay=4, jitter=True)


def test_erp_nightly_rides_out_transient_faults_inside_the_call(engine_for, fault_simulator, ledger_db):
    sim = fault_simulator
    sim.reset()
    nightly = load_spec_file(ROOT / "dags" / "specs" / "erp_nightly.yaml")
    assert isinstance(nightly, Workflow)
    # Registered under its own name: the dags folder's erp_nightly runs on openai_default.
    workflow = nightly.model_copy(update={"name": "governance_erp_nightly", "schedule": None,
                                          "retry_policy": FAST_RETRIES})
    engine = engine_for(_engine_config(FAULT_CONN))
    workflow_id = engine.register_workflow(workflow)
    started = time.monotonic()
    result = engine.execute_workflow(workflow_id)
    wall = time.monotonic() - started

    requests = sim.requests()
    faults = [r for r in requests if r["fault"]]
    served = [r for r in requests if r["status"] == 200]
    tis = _task_instances(engine, workflow_id, result.run_id)
    agent_task_ids = [a.task_id for a in result.agent_results.values()]
    agent_tis = [ti for ti in tis if ti["task_id"] in agent_task_ids]
    records = _cost_records(engine, workflow_id, result.run_id, agent_task_ids)
    retries = sum(r.retries for r in records.values() if r is not None)
    calls = _ledger_calls(ledger_db, workflow_id, result.run_id)
    settled = [c for c in calls if c["state"] == "settled"]
    ledger_spend = Decimal(sum(c["actual_micros"] for c in settled)) / 1_000_000
    print(f"\nfaults: wall {wall:.1f} s, {len(requests)} requests, {len(faults)} faults "
          f"({sorted(r['fault'] for r in faults)}), {retries} retries, {len(settled)} charges, "
          f"{len(calls) - len(settled)} uncharged calls, ledger ${ledger_spend:.6f}; {result.status.value}: {result.reason}")

    failed = [a for a in result.agent_results.values() if not a.succeeded]
    assert result.status in (WorkflowStatus.COMPLETED, WorkflowStatus.PARTIAL), result.reason
    assert all(not a.critical for a in failed), [a.name for a in failed]
    assert len(agent_tis) == len(result.agent_results) == 15
    assert {ti["try_number"] for ti in tis} == {1}, {ti["task_id"]: ti["try_number"] for ti in tis}
    assert faults and retries > 0
    if not failed:
        assert retries == len(faults)  # every fault was retried once, inside its call
    assert len(settled) == len(served)  # failed attempts were not billed
    assert all(not c["actual_micros"] for c in calls if c["state"] != "settled")
    assert [c for c in calls if c["state"] == "held"] == []
    assert abs(ledger_spend - expected_cost(served)) < Decimal("0.01")
