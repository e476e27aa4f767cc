"""A fan-out agent over 120 items in chunks of 50 (3 mapped tasks), against the simulator over HTTP:
per-item results and cost records, one failed item, distinct ledger call keys, the joined output and
the summary's per-item counts."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from sqlalchemy import create_engine, select

from erp_agents.contracts import SummaryAgent
from erp_agents.costs.ledger_tables import calls
from erp_agents.factory.plan import plan_workflow
from erp_agents.governance import ITEM_CALL_STRIDE
from erp_agents.monitoring.outcome import decide_outcome, fan_out_outcome
from erp_agents.operators.for_each import chunks_of
from erp_agents.spec.models import Agent, EngineConfig, ForEach, LLMConfig, RateLimitConfig, RetryPolicy, Workflow
from erp_agents.store import governance_url
from erp_agents.triggers.agent import AgentTrigger
from erp_agents.xcom import fan_out_output
from include.llm_simulator.testing import running_simulator

KEY = "sk-fanout-test-key-0123456789abcdef"
BAD_ITEM = 7  # a plain string: `item.n` does not render, so this item alone fails


@pytest.fixture(scope="module")
def simulator():
    with running_simulator(api_key=KEY) as sim:
        yield sim


@pytest.fixture
def sim(simulator, monkeypatch):
    simulator.reset()
    monkeypatch.setenv("AIRFLOW_CONN_OPENAI_DEFAULT",
                       json.dumps({"conn_type": "openai", "password": KEY, "host": simulator.openai_base_url}))
    return simulator


def _invocation():
    wf = Workflow(name="fan", retry_policy=RetryPolicy(max_retries=1, base_delay=0.05, max_delay=0.05, jitter=False),
                  agents=[Agent(name="reviewer", module="Finance", llm_config=LLMConfig(model="gpt-4o-mini", max_tokens=50),
                                prompt_template="review item {{ item_index }}: {{ item.n }}",
                                for_each=ForEach(tool="finance.list_open_invoices"))])
    engine = EngineConfig(rate_limit_config=RateLimitConfig(requests_per_minute=100_000, requests_per_hour=None,
                                                            requests_per_day=None, tokens_per_minute=None,
                                                            concurrent_requests=200))
    return plan_workflow(wf, engine).tasks[0].invocation


def test_chunks_run_items_concurrently_each_with_its_own_result_cost_and_call_keys(sim):
    invocation = _invocation()
    items = [{"n": f"INV-{i:04d}"} for i in range(120)]
    items[BAD_ITEM] = "not-an-invoice"
    chunks = chunks_of(items, invocation.fan_out.chunk_size)
    assert len(chunks) == 3
    run_id = f"fan-{uuid.uuid4().hex[:8]}"

    lines: list[str] = []

    class Recording:  # the trigger's task log
        def _line(self, message: str, *args: object, **_: object) -> None:
            lines.append(message % args if args else message)

        info = warning = error = debug = exception = _line

    def trigger(map_index: int, chunk: dict) -> AgentTrigger:
        run = {"schema_version": 1, "dag_id": "fan", "run_id": run_id, "task_id": "finance.reviewer",
               "map_index": map_index}
        made = AgentTrigger(invocation=invocation.to_json(), end_in_triggerer=False, run=run, upstream_outputs={},
                            chunk=chunk)
        made._log = Recording()
        return made

    async def all_chunks():
        async def one(t):
            return [event async for event in t.run()]
        return await asyncio.gather(*(one(trigger(i, c)) for i, c in enumerate(chunks)))

    events = [event.payload for [event] in asyncio.run(all_chunks())]
    assert [e["status"] for e in events] == ["success"] * 3
    results = [item for e in events for item in e["items"]]
    assert [r["index"] for r in results] == list(range(120))
    assert [len(e["items"]) for e in events] == [50, 50, 20]

    # One start line per chunk, not one per item; one line per model request.
    starts = [line for line in lines if line.startswith("Agent reviewer: gpt-4o-mini")]
    assert sorted(starts) == sorted(f"Agent reviewer: gpt-4o-mini via openai, tools: none, {n} items" for n in (50, 50, 20))
    assert sum(1 for line in lines if line.startswith("model_request ")) == 119

    bad = results[BAD_ITEM]
    assert (bad["status"], bad["error_type"], bad["cost_record"]["calls"]) == ("failed", "PermanentAgentError", 0)
    assert "prompt_template of agent 'reviewer'" in bad["error"]
    good = [r for r in results if r["index"] != BAD_ITEM]
    assert all(r["status"] == "success" and r["output"] and r["cost_record"]["calls"] == 1 for r in good)

    # Each request carried its own item; the server saw exactly the 119 good ones.
    sent = sorted(r["request"]["messages"][-1]["content"] for r in sim.requests())
    assert sent == sorted(f"review item {i}: INV-{i:04d}" for i in range(120) if i != BAD_ITEM)

    # The chunk's cost record is the sum of its items' records.
    for event in events:
        record, per_item = event["cost_record"], [i["cost_record"] for i in event["items"]]
        assert record["calls"] == sum(r["calls"] for r in per_item)
        assert record["input_tokens"] == sum(r["input_tokens"] for r in per_item)
        assert record["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in per_item), abs=1e-12)

    # One settled ledger row per request, each under its own key: the item index is in the call number.
    with create_engine(governance_url()).connect() as db:
        rows = db.execute(select(calls.c.call_key, calls.c.map_index, calls.c.call_no, calls.c.state,
                                 calls.c.actual_micros).where(calls.c.run_id == run_id)).all()
    assert len(rows) == 119 and len({r.call_key for r in rows}) == 119
    assert {(r.map_index, r.call_no) for r in rows} == {
        (i // 50, (i + 1) * ITEM_CALL_STRIDE + 1) for i in range(120) if i != BAD_ITEM}
    assert {r.state for r in rows} == {"settled"}
    ledger_micros = sum(r.actual_micros for r in rows)
    # Exactly what each item's requests cost, in micro-dollars; the float totals agree to the cent.
    assert ledger_micros == sum(q["cost_micros"] for r in results for q in r["cost_record"]["requests"])
    assert ledger_micros / 1e6 == pytest.approx(sum(e["cost_record"]["cost_usd"] for e in events), abs=0.01)

    # Downstream agents read the results joined in item order, a failed item as null.
    joined = fan_out_output([json.dumps(e["result"]) for e in events])
    assert len(joined) == 120 and joined[BAD_ITEM] is None
    assert joined[:3] == [r["output"] for r in results[:3]]

    # The summary counts items per fan-out agent and sums the chunks' costs.
    outcome = fan_out_outcome(_XComsOf(events), "finance.reviewer",
                              SummaryAgent(name="reviewer", critical=False, items_task_id="finance.reviewer__items"),
                              {f"finance.reviewer_{i}": "success" for i in range(3)})
    summary = decide_outcome("fan", [outcome], allow_partial=True, cost_budget=None)
    row = summary.per_agent["finance.reviewer"]
    assert (row.items_total, row.items_ok, row.items_failed, row.chunks, row.calls) == (120, 119, 1, 3, 119)
    assert summary.status == "partial" and "1 of 120 items failed" in summary.reason
    assert summary.total_cost == pytest.approx(sum(e["cost_record"]["cost_usd"] for e in events), abs=1e-12)


class _XComsOf:
    """The XComs the three chunk tasks pushed (``execute_complete``), served by map index."""

    def __init__(self, events: list[dict]) -> None:
        self.values = {("cost_record", i): e["cost_record"] for i, e in enumerate(events)}
        self.values |= {("items", i): e["items"] for i, e in enumerate(events)}

    def xcom_pull(self, *, task_ids: str, key: str, map_indexes: int):
        return self.values.get((key, map_indexes))
