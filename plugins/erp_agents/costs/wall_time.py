"""The least wall time a workflow's rate limits allow: a lower bound, not a prediction.

Every tier of every scope an agent's calls draw on (``EngineConfig.effective_rate_limits``) caps how
much fits in one window: ``n`` requests (or tokens) against a limit ``L`` per window ``W`` need at
least ``(ceil(n / L) - 1) * W`` seconds, because ``k`` windows of length ``W`` hold at most ``k * L``.
Tokens count as the limiter reserves them: prompt estimate plus max_tokens per call. With a call
time ``call_s`` above zero two more bounds apply: concurrency (``ceil(calls / C) * call_s`` per
scope) and the dependency levels (one level after another; within a level at most
``max_parallel_agents`` agents at once, each making its calls one after another).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from erp_agents.limits.tiers import Tier, tiers_for
from erp_agents.spec.graph import build_graph
from erp_agents.spec.models import EngineConfig, Workflow


@dataclass(frozen=True)
class TierLoad:
    """What a run puts on one tier, and the time that alone forces."""

    tier: str  # "<scope>|<tier name>", as the limiter keys it
    limit: int
    amount: int  # requests or tokens (for concurrency: requests)
    seconds: float


@dataclass(frozen=True)
class WallTime:
    """The least wall time and what forces it; ``math.inf`` when one call can never fit a token tier."""

    seconds: float
    binding: str  # the tier key, "dependency levels", or "" when nothing binds
    calls: int
    tokens: int
    loads: tuple[TierLoad, ...]


def _tier_seconds(tier: Tier, amount: int, largest: int, call_s: float) -> float:
    if tier.kind == "tokens" and largest > tier.limit:
        return math.inf
    if tier.window_s is None:  # concurrency: only a call time makes it bind
        return math.ceil(amount / tier.limit) * call_s if amount else 0.0
    return max(math.ceil(amount / tier.limit) - 1, 0) * tier.window_s


def _levels_seconds(workflow: Workflow, calls: Mapping[str, Sequence[int]], call_s: float) -> float:
    if call_s <= 0:
        return 0.0
    total = 0.0
    for level in build_graph(workflow).levels:
        longest = max((len(calls.get(name, ())) for name in level), default=0)
        total += math.ceil(len(level) / workflow.max_parallel_agents) * longest * call_s
    return total


def min_wall_time(
    workflow: Workflow,
    engine: EngineConfig,
    calls: Mapping[str, Sequence[int]],
    *,
    items: int = 1,
    call_s: float = 0.0,
) -> WallTime:
    """Least seconds for ``items`` runs of ``workflow`` whose agent ``name`` makes ``len(calls[name])``
    calls of ``calls[name][k]`` tokens each (prompt estimate + max_tokens), all runs sharing the limits."""
    requests: dict[str, int] = defaultdict(int)
    tokens: dict[str, int] = defaultdict(int)
    largest: dict[str, int] = defaultdict(int)
    known: dict[str, Tier] = {}
    for agent in workflow.agents:
        agent_calls = calls.get(agent.name, ())
        if not agent_calls:
            continue
        provider_name, _ = engine.provider_for(agent.llm_config)
        scopes = engine.effective_rate_limits(provider_name, agent.llm_config.model, workflow.rate_limit_config)
        for tier in tiers_for(scopes):
            known[tier.key] = tier
            requests[tier.key] += len(agent_calls) * items
            tokens[tier.key] += sum(agent_calls) * items
            largest[tier.key] = max(largest[tier.key], max(agent_calls))
    loads = []
    for key, tier in sorted(known.items()):
        amount = tokens[key] if tier.kind == "tokens" else requests[key]
        loads.append(TierLoad(key, tier.limit, amount, _tier_seconds(tier, amount, largest[key], call_s)))
    levels_s = _levels_seconds(workflow, calls, call_s)
    seconds, binding = levels_s, "dependency levels" if levels_s > 0 else ""
    for load in loads:
        if load.seconds > seconds:
            seconds, binding = load.seconds, load.tier
    n_calls = sum(len(c) for c in calls.values()) * items
    n_tokens = sum(sum(c) for c in calls.values()) * items
    return WallTime(seconds, binding, n_calls, n_tokens, tuple(loads))


def format_seconds(seconds: float) -> str:
    """``2 h 05 min``, ``3 min 20 s``, ``12 s``; ``never`` for infinity."""
    if math.isinf(seconds):
        return "never"
    whole = math.ceil(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"
