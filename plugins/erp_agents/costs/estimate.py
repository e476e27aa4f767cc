"""A run's cost forecast before anything runs: worst case, typical cost from the ledger, least wall time.

Worst case of one agent: pydantic-ai makes at most ``max_tool_rounds + 1`` requests per try (the
runner's ``request_limit``). Request ``k`` (0-based) carries the prompt (system prompt, template,
tool definitions, output schema, the upstream outputs the template names, each bounded by that
agent's max_tokens) plus the ``k`` answers before it, and may answer ``max_tokens``; every prompt
token is priced at its dearest rate (``pricing.worst_case_micros``). Tool results and retried tries
are not bounded by the spec, so they are not in the figure; the ledger still stops them at the
budget. The workflow's worst case is the sum over its agents.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, func, select

from erp_agents.costs.ledger import Ledger
from erp_agents.costs.ledger_tables import calls as calls_t
from erp_agents.costs.money import budget_micros, format_usd, micros_to_usd
from erp_agents.costs.pricing import worst_case_micros
from erp_agents.costs.wall_time import WallTime, format_seconds, min_wall_time
from erp_agents.exceptions import UnknownPriceError
from erp_agents.spec.graph import build_graph
from erp_agents.spec.models import Agent, EngineConfig, Workflow, bare_model_name

__all__ = [
    "AgentEstimate", "Estimate", "budget_warnings", "default_max_tokens", "estimate_workflow",
    "format_estimate", "prompt_token_counter", "typical_run_micros",
]

CHARS_PER_TOKEN = 4

TokenCounter = Callable[[Sequence[str], str], int]


def prompt_token_counter() -> tuple[TokenCounter, str]:
    """The best tokenizer here and its name: the limiter's (o200k_base, shipped), else tiktoken's own
    o200k_base if it loads offline, else characters / 4 rounded up, which overcounts typical English."""
    try:
        from erp_agents.limits.estimate import estimate_prompt_tokens
    except ImportError:
        pass
    else:
        return (lambda texts, model: estimate_prompt_tokens(list(texts), model)), "o200k_base"
    try:
        import tiktoken

        encoding = tiktoken.get_encoding("o200k_base")
    except Exception:  # no package, or no network to fetch the encoding
        return (lambda texts, model: sum(math.ceil(len(t) / CHARS_PER_TOKEN) for t in texts) + 3), "chars/4"
    return (lambda texts, model: sum(len(encoding.encode_ordinary(t)) + 4 for t in texts) + 3), "tiktoken o200k_base"


def default_max_tokens(provider_type: str, model: str) -> int:
    """The output a request may produce when the agent sets no max_tokens: the bound the runner sends
    to every provider (so the forecast, the limiter and the ledger reserve the same worst case)."""
    from erp_agents.governance import DEFAULT_MAX_OUTPUT_TOKENS

    return DEFAULT_MAX_OUTPUT_TOKENS


@dataclass(frozen=True)
class AgentEstimate:
    name: str
    module: str
    model: str
    provider: str
    prompt_tokens: int  # the first request's prompt
    max_tokens: int
    calls: int
    worst_case_micros: int  # every call of one try
    first_call_micros: int
    cost_limit_micros: int | None

    def call_tokens(self) -> list[int]:
        """Tokens the limiter reserves for each call: prompt so far plus max_tokens."""
        return [self.prompt_tokens + (k + 1) * self.max_tokens for k in range(self.calls)]


@dataclass(frozen=True)
class Estimate:
    workflow: str
    items: int  # runs forecast together, sharing the rate limits
    agents: tuple[AgentEstimate, ...]
    worst_case_micros: int  # one run
    budget_micros: int | None
    wall: WallTime  # ``items`` worst-case runs
    wall_one_call: WallTime  # ``items`` runs whose agents each make one call
    tokenizer: str
    typical_micros: int | None = None  # mean settled spend of a finished past run
    typical_runs: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def total_worst_case_micros(self) -> int:
        return self.worst_case_micros * self.items

    def as_dict(self) -> dict[str, Any]:
        """JSON-able; money in USD as decimal strings."""
        def usd(micros: int | None) -> str | None:
            return None if micros is None else str(micros_to_usd(micros))

        return {
            "workflow": self.workflow, "items": self.items, "tokenizer": self.tokenizer,
            "worst_case_usd": usd(self.worst_case_micros), "total_worst_case_usd": usd(self.total_worst_case_micros),
            "budget_usd": usd(self.budget_micros), "typical_usd": usd(self.typical_micros),
            "typical_runs": self.typical_runs,
            "min_wall_seconds": None if math.isinf(self.wall.seconds) else self.wall.seconds,
            "min_wall_binding": self.wall.binding,
            "min_wall_seconds_one_call": None if math.isinf(self.wall_one_call.seconds) else self.wall_one_call.seconds,
            "agents": [
                {"name": a.name, "module": a.module, "model": a.model, "provider": a.provider,
                 "prompt_tokens": a.prompt_tokens, "max_tokens": a.max_tokens, "calls": a.calls,
                 "worst_case_usd": usd(a.worst_case_micros), "cost_limit_usd": usd(a.cost_limit_micros)}
                for a in self.agents
            ],
            "notes": list(self.notes),
        }


def _prompt_texts(agent: Agent, workflow: Workflow) -> list[str]:
    texts = [agent.system_prompt or "", agent.prompt_template]
    if "params" in agent.prompt_template and workflow.params:
        texts.append(json.dumps(workflow.params, ensure_ascii=False))  # a value can be longer than its placeholder
    if agent.output_schema:
        texts.append(json.dumps(agent.output_schema, ensure_ascii=False))
    texts.extend(_tool_texts(agent))
    return [t for t in texts if t]


def _tool_texts(agent: Agent) -> list[str]:
    """Tool definitions as the model receives them; an unknown tool counts as nothing (lint reports it)."""
    if not agent.tools:
        return []
    try:
        from erp_agents.tools.registry import default_registry

        tools = default_registry().build(agent.tools)
    except Exception:  # unknown or broken tool: lint's problem, not the forecast's
        return [json.dumps([t if isinstance(t, str) else t.model_dump(mode="json") for t in agent.tools])]
    return [
        json.dumps({"name": t.tool_def.name, "description": t.tool_def.description,
                    "parameters": t.tool_def.parameters_json_schema}, ensure_ascii=False)
        for t in tools
    ]


def _names_upstream(template: str, name: str) -> bool:
    return re.search(rf"agents\s*(\.\s*{re.escape(name)}\b|\[\s*['\"]{re.escape(name)}['\"])", template) is not None


def _agent_estimates(workflow: Workflow, engine: EngineConfig, count: TokenCounter) -> list[AgentEstimate]:
    graph = build_graph(workflow)
    overrides = {k: v.model_dump() for k, v in engine.cost_config.model_costs.items()}
    by_name = {a.name: a for a in workflow.agents}
    calls = engine.max_tool_rounds + 1
    max_out: dict[str, int] = {}
    found: list[AgentEstimate] = []
    for name in graph.order:  # upstream first: their max_tokens bound what this prompt receives
        agent = by_name[name]
        llm = agent.llm_config
        provider_name, provider = engine.provider_for(llm)
        out = max_out[name] = llm.max_tokens or default_max_tokens(provider.type, llm.model)
        prompt = count(_prompt_texts(agent, workflow), llm.model)
        prompt += sum(max_out[up] for up in graph.upstream[name] if _names_upstream(agent.prompt_template, up))
        per_call = [
            worst_case_micros(llm.model, provider.type, overrides, prompt + k * out, out) for k in range(calls)
        ]
        limit = budget_micros(agent.cost_limit) if agent.cost_limit is not None else None
        found.append(AgentEstimate(agent.name, agent.module, llm.model, provider_name, prompt, out, calls,
                                   sum(per_call), per_call[0], limit))
    order = {a.name: i for i, a in enumerate(workflow.agents)}
    return sorted(found, key=lambda a: order[a.name])


def typical_run_micros(ledger: Ledger, dag_id: str) -> tuple[int | None, int]:
    """Mean settled spend per finished run of ``dag_id`` (runs with a call still held are left out),
    and how many runs that mean covers."""
    c = calls_t.c
    busy = select(c.run_id).where(c.dag_id == dag_id, c.state == "held")
    per_run = (
        select(c.run_id, func.sum(c.actual_micros).label("spent"))
        .where(c.dag_id == dag_id, c.state == "settled", c.run_id.not_in(busy))
        .group_by(c.run_id)
        .subquery()
    )

    def query(engine: Engine) -> tuple[Any, ...]:
        with engine.connect() as conn:
            return tuple(conn.execute(select(func.sum(per_run.c.spent), func.count())).one())

    total, runs = ledger.read(query)
    if not runs:
        return None, 0
    return int(round(int(total or 0) / int(runs))), int(runs)


def estimate_workflow(
    workflow: Workflow,
    engine_config: EngineConfig,
    *,
    items: int | None = None,
    ledger: Ledger | None = None,
    call_s: float = 0.0,
) -> Estimate:
    """Forecast ``items`` runs (default 1) of ``workflow``; the typical cost comes from ``ledger`` if given.

    Raises UnknownPriceError for an unpriced model and ValueError for an unknown provider."""
    n = 1 if items is None else items
    if n < 1:
        raise ValueError("items must be at least 1")
    count, tokenizer = prompt_token_counter()
    agents = _agent_estimates(workflow, engine_config, count)
    wall = min_wall_time(workflow, engine_config, {a.name: a.call_tokens() for a in agents}, items=n, call_s=call_s)
    one = min_wall_time(workflow, engine_config, {a.name: a.call_tokens()[:1] for a in agents}, items=n, call_s=call_s)
    typical, runs = typical_run_micros(ledger, workflow.name) if ledger is not None else (None, 0)
    notes = []
    if tokenizer == "chars/4":
        notes.append("prompt tokens estimated as characters / 4: no tokenizer could be loaded")
    return Estimate(
        workflow=workflow.name, items=n, agents=tuple(agents),
        worst_case_micros=sum(a.worst_case_micros for a in agents),
        budget_micros=budget_micros(workflow.cost_budget) if workflow.cost_budget is not None else None,
        wall=wall, wall_one_call=one, tokenizer=tokenizer, typical_micros=typical, typical_runs=runs,
        notes=tuple(notes),
    )


def budget_warnings(workflow: Workflow, engine: EngineConfig) -> list[str]:
    """Lint warnings: a run's worst case above cost_budget, an agent's above its cost_limit (and, louder,
    an agent whose first request alone can never fit its cost_limit). Unpriced models and unknown
    providers are lint errors of their own and give no warning here."""
    try:
        est = estimate_workflow(workflow, engine)
    except (UnknownPriceError, ValueError):
        return []
    warnings = []
    if est.budget_micros is not None and est.worst_case_micros > est.budget_micros:
        warnings.append(
            f"worst case of one run {format_usd(est.worst_case_micros)} exceeds cost_budget "
            f"{format_usd(est.budget_micros)}: the budget may end the run"
        )
    for a in est.agents:
        if a.cost_limit_micros is None:
            continue
        if a.first_call_micros > a.cost_limit_micros:
            warnings.append(
                f"agent {a.name!r}: its first request alone may cost {format_usd(a.first_call_micros)} "
                f"({a.prompt_tokens} prompt tokens + max_tokens {a.max_tokens}), above cost_limit "
                f"{format_usd(a.cost_limit_micros)}: it fails before any request; lower max_tokens"
            )
        elif a.worst_case_micros > a.cost_limit_micros:
            warnings.append(
                f"agent {a.name!r}: worst case {format_usd(a.worst_case_micros)} ({a.calls} requests of up to "
                f"{a.max_tokens} output tokens) exceeds cost_limit {format_usd(a.cost_limit_micros)}"
            )
    return warnings


def format_estimate(est: Estimate) -> str:
    """Markdown: a table per agent and the run's figures, for the CLI and the DAG's docs."""
    lines = [
        f"## Cost forecast: {est.workflow}",
        "",
        "| agent | model | prompt tokens | max_tokens | requests | worst case | cost_limit |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for a in est.agents:
        limit = format_usd(a.cost_limit_micros) if a.cost_limit_micros is not None else "-"
        lines.append(f"| {a.name} | {a.model} | {a.prompt_tokens} | {a.max_tokens} | {a.calls} "
                     f"| {format_usd(a.worst_case_micros)} | {limit} |")
    budget = f" (cost_budget {format_usd(est.budget_micros)})" if est.budget_micros is not None else ""
    lines += ["", f"- Worst case of one run: {format_usd(est.worst_case_micros)}{budget}"]
    if est.items > 1:
        lines.append(f"- Worst case of {est.items} runs: {format_usd(est.total_worst_case_micros)}")
    if est.typical_micros is not None:
        lines.append(f"- Typical run: {format_usd(est.typical_micros)} (mean of {est.typical_runs} past runs)")
    else:
        lines.append("- Typical run: no past runs in the ledger")
    runs = f"{est.items} runs" if est.items > 1 else "one run"
    bound = f" (bound by {est.wall.binding})" if est.wall.binding else ""
    lines.append(f"- Least wall time the rate limits allow for {runs}: {format_seconds(est.wall.seconds)}{bound}; "
                 f"{format_seconds(est.wall_one_call.seconds)} if every agent needs one request")
    lines.append(f"- Prompt tokens counted with {est.tokenizer}; tool results are not bounded by the spec")
    lines += [f"- {note}" for note in est.notes]
    return "\n".join(lines) + "\n"
