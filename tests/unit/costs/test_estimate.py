"""The forecast: worst case by hand, warnings lint shows, typical cost from a ledger, least wall time."""

from __future__ import annotations

import asyncio
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from erp_agents.costs.estimate import (
    budget_warnings,
    default_max_tokens,
    estimate_workflow,
    format_estimate,
    prompt_token_counter,
)
from erp_agents.costs.ledger import Ledger
from erp_agents.costs.ledger_types import Account, CallKey, ChargeDetail
from erp_agents.costs.wall_time import format_seconds
from erp_agents.spec.models import EngineConfig, Workflow

PRICES = {"acme-1": {"input": 0.001, "output": 0.002}}  # USD per 1K tokens


def engine(**extra: Any) -> EngineConfig:
    return EngineConfig.model_validate({"cost_config": {"model_costs": PRICES}, **extra})


def agent(name: str, prompt: str = "Summarise the ledger.", **extra: Any) -> dict[str, Any]:
    return {"name": name, "llm_config": {"model": "acme-1", "max_tokens": 100}, "prompt_template": prompt, **extra}


def workflow(*agents: dict[str, Any], **extra: Any) -> Workflow:
    return Workflow.model_validate({"name": "wf", "agents": list(agents), **extra})


def test_worst_case_is_every_request_at_max_tokens_with_the_conversation_growing() -> None:
    count, _ = prompt_token_counter()
    prompt = count(["Summarise the ledger."], "acme-1")
    est = estimate_workflow(workflow(agent("a")), engine(max_tool_rounds=2))
    (a,) = est.agents
    assert (a.prompt_tokens, a.max_tokens, a.calls) == (prompt, 100, 3)
    per_call = [(Decimal("0.001") * (prompt + k * 100) + Decimal("0.002") * 100) / 1000 for k in range(3)]
    assert a.worst_case_micros == sum(math.ceil(usd * 1_000_000) for usd in per_call)  # each request rounded up
    assert est.worst_case_micros == a.worst_case_micros
    assert a.call_tokens() == [prompt + 100, prompt + 200, prompt + 300]


def test_an_upstream_output_the_template_names_counts_at_its_max_tokens() -> None:
    wf = workflow(
        agent("a"),
        agent("b", "Analyse: {{ agents.a.output }}", dependencies=["a"]),
        agent("c", "Analyse nothing upstream", dependencies=["a"]),
    )
    count, _ = prompt_token_counter()
    by = {a.name: a for a in estimate_workflow(wf, engine()).agents}
    assert by["b"].prompt_tokens == count(["Analyse: {{ agents.a.output }}"], "acme-1") + 100
    assert by["c"].prompt_tokens == count(["Analyse nothing upstream"], "acme-1")


def test_default_max_tokens_per_provider() -> None:
    from erp_agents.governance import DEFAULT_MAX_OUTPUT_TOKENS

    # The runner sends this bound when a spec sets none, so the forecast reserves the same worst case.
    assert default_max_tokens("anthropic", "claude-sonnet-4-5") == DEFAULT_MAX_OUTPUT_TOKENS
    assert default_max_tokens("openai", "gpt-4o-mini") == DEFAULT_MAX_OUTPUT_TOKENS
    unset = workflow({"name": "a", "llm_config": {"model": "gpt-4o-mini"}, "prompt_template": "x"})
    assert estimate_workflow(unset, EngineConfig()).agents[0].max_tokens == DEFAULT_MAX_OUTPUT_TOKENS


def test_budget_warnings_name_the_run_budget_and_each_agent_limit() -> None:
    eng = engine(max_tool_rounds=2)
    assert budget_warnings(workflow(agent("a"), cost_budget=1.0), eng) == []
    over = budget_warnings(workflow(agent("a"), cost_budget=0.0002), eng)
    assert len(over) == 1 and "exceeds cost_budget $0.000200" in over[0]
    # first request costs about $0.0002 (prompt + 100 output tokens); three requests about $0.0009
    between = budget_warnings(workflow(agent("a", cost_limit=0.0005)), eng)
    assert len(between) == 1 and "agent 'a': worst case" in between[0] and "exceeds cost_limit $0.000500" in between[0]
    never = budget_warnings(workflow(agent("a", cost_limit=0.0001)), eng)
    assert len(never) == 1 and "fails before any request" in never[0]


def test_unpriced_model_gives_no_warning_here_lint_reports_it() -> None:
    wf = workflow({"name": "a", "llm_config": {"model": "nobody-prices-this"}, "prompt_template": "x"}, cost_budget=0.01)
    assert budget_warnings(wf, EngineConfig()) == []


def _settle(ledger: Ledger, run_id: str, micros: int, *, settle: bool = True, dag: str = "wf") -> None:
    async def go() -> None:
        res = await ledger.reserve(CallKey(dag, run_id, "a"), [Account(f"run:{dag}/{run_id}", 10**9, "run")], micros)
        if settle:
            await ledger.settle(res, micros, ChargeDetail(model="acme-1", module="Custom"))

    asyncio.run(go())


def test_typical_cost_is_the_mean_of_finished_runs_in_the_ledger(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        wf = workflow(agent("a"))
        assert estimate_workflow(wf, engine(), ledger=ledger).typical_micros is None
        _settle(ledger, "r1", 100)
        _settle(ledger, "r2", 300)
        _settle(ledger, "r3", 5000, settle=False)  # still in flight: not a typical run yet
        _settle(ledger, "r4", 7000, dag="other")
        est = estimate_workflow(wf, engine(), ledger=ledger)
        assert (est.typical_micros, est.typical_runs) == (200, 2)
        assert "Typical run: $0.000200 (mean of 2 past runs)" in format_estimate(est)
    finally:
        ledger.close()


def test_least_wall_time_from_requests_per_minute_across_items() -> None:
    limits = {"requests_per_minute": 10, "requests_per_hour": None, "requests_per_day": None,
              "tokens_per_minute": None, "concurrent_requests": None}
    eng = engine(max_tool_rounds=1, rate_limit_config=limits)
    est = estimate_workflow(workflow(agent("a")), eng, items=30)
    # 30 runs x 2 requests = 60 requests at 10 a minute: the last batch starts after 5 full minutes
    assert (est.wall.seconds, est.wall.binding, est.wall.calls) == (300.0, "provider:openai|rpm", 60)
    assert est.wall_one_call.seconds == 120.0  # 30 requests: 3 batches
    assert est.total_worst_case_micros == 30 * est.worst_case_micros


def test_a_workflow_limit_lowers_the_engine_and_a_per_model_limit_adds_a_scope() -> None:
    eng = engine(max_tool_rounds=1, providers={"openai": {"model_rate_limits": {"acme-1": {"requests_per_minute": 5}}}})
    est = estimate_workflow(workflow(agent("a"), rate_limit_config={"requests_per_minute": 4}), eng, items=10)
    loads = {load.tier: load for load in est.wall.loads}
    assert loads["provider:openai|rpm"].limit == 4 and loads["model:openai:acme-1|rpm"].limit == 4
    assert est.wall.seconds == (math.ceil(20 / 4) - 1) * 60


def test_a_request_larger_than_the_token_limit_never_runs() -> None:
    eng = engine(rate_limit_config={"tokens_per_minute": 50})
    est = estimate_workflow(workflow(agent("a")), eng)
    assert math.isinf(est.wall.seconds) and est.wall.binding == "provider:openai|tpm"
    assert "never" in format_estimate(est)
    assert est.as_dict()["min_wall_seconds"] is None


def test_dependency_levels_and_concurrency_bind_with_a_call_time() -> None:
    unlimited = {"requests_per_minute": None, "requests_per_hour": None, "requests_per_day": None,
                 "tokens_per_minute": None, "concurrent_requests": None}
    eng = engine(max_tool_rounds=1, rate_limit_config=unlimited)
    chain = workflow(agent("a"), agent("b", dependencies=["a"]), agent("c", dependencies=["b"]))
    est = estimate_workflow(chain, eng, call_s=2.0)
    assert (est.wall.seconds, est.wall.binding) == (12.0, "dependency levels")  # 3 levels x 2 requests x 2 s
    wide = workflow(*[agent(f"a{i}") for i in range(4)], max_parallel_agents=2)
    assert estimate_workflow(wide, eng, call_s=1.0).wall.seconds == 4.0  # 2 waves of 2 requests
    one_slot = engine(max_tool_rounds=1, rate_limit_config={**unlimited, "concurrent_requests": 1})
    est = estimate_workflow(wide, one_slot, call_s=1.0)
    assert (est.wall.seconds, est.wall.binding) == (8.0, "provider:openai|concurrent")
    assert estimate_workflow(wide, one_slot).wall.seconds == 0.0  # no call time: rate limits alone


def test_format_estimate_is_a_markdown_table() -> None:
    text = format_estimate(estimate_workflow(workflow(agent("a"), cost_budget=1.0), engine(), items=3))
    assert "| agent | model | prompt tokens | max_tokens | requests | worst case | cost_limit |" in text
    assert "| a | acme-1 |" in text and "(cost_budget $1.000000)" in text and "Worst case of 3 runs" in text
    assert format_seconds(3725) == "1 h 02 min" and format_seconds(61) == "1 min 01 s" and format_seconds(0.2) == "1 s"


def test_items_must_be_positive() -> None:
    with pytest.raises(ValueError):
        estimate_workflow(workflow(agent("a")), engine(), items=0)
