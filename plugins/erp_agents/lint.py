"""Lint: the loader's own validation plus what only a whole folder and the runtime registries can see.

It lives outside ``spec`` because it asks the tool registry and the price table, which ``spec``
(I/O-free) must not import.
"""

from __future__ import annotations

from pathlib import Path

from erp_agents.costs.estimate import budget_warnings
from erp_agents.costs.pricing import has_price
from erp_agents.governance import DEFAULT_MAX_OUTPUT_TOKENS
from erp_agents.exceptions import SpecProblem, UnknownToolError
from erp_agents.spec.discovery import SpecSet, load_folder
from erp_agents.spec.loader import LocatedDocument, parse_yaml
from erp_agents.spec.models import RATE_FIELDS, Agent, EngineConfig, InlineTool, RateLimitConfig, Workflow
from erp_agents.tools.registry import default_registry, inline_parameters_problem


def _semantic_problems(doc: LocatedDocument, workflow: Workflow, engine: EngineConfig) -> list[SpecProblem]:
    """Unregistered tools, models without a price, pools the engine config does not declare:
    valid YAML, but the run would fail or wait forever."""
    problems = []
    registry = default_registry()
    pools = engine.pools()
    overrides = {k: v.model_dump() for k, v in engine.cost_config.model_costs.items()}

    def at_key(index: int, key: str, field: str, message: str) -> None:
        """A problem with ``field``, shown at the line of the agent's ``key``."""
        line, column = doc.locate(("agents", index, key))
        problems.append(SpecProblem(doc.file, line, column, field, message))

    for i, agent in enumerate(workflow.agents):
        if agent.pool and agent.pool not in pools:
            at_key(i, "pool", f"agents[{i}].pool",
                   f"pool {agent.pool!r} is not in the engine config; known: {', '.join(sorted(pools))}")
        if agent.for_each is not None and agent.for_each.tool is not None:
            try:
                registry.qualified_name(agent.for_each.tool)
            except UnknownToolError as exc:
                at_key(i, "for_each", f"agents[{i}].for_each.tool", str(exc))
        for j, (name, tool) in enumerate(zip(agent.tool_names(), agent.tools)):
            function = None
            try:
                function = registry.tools[registry.qualified_name(name)]
            except UnknownToolError as exc:
                at_key(i, "tools", f"agents[{i}].tools[{j}]", str(exc))
            if isinstance(tool, InlineTool) and (problem := inline_parameters_problem(tool, function)):
                at_key(i, "tools", f"agents[{i}].tools[{j}].function.parameters", problem)
        try:
            _, provider = engine.provider_for(agent.llm_config)
        except ValueError as exc:
            at_key(i, "llm_config", f"agents[{i}].llm_config.provider", str(exc))
            continue
        if not has_price(agent.llm_config.model, provider.type, overrides):
            at_key(i, "llm_config", f"agents[{i}].llm_config.model",
                   f"no price for model {agent.llm_config.model!r}: add it to EngineConfig cost_config.model_costs")
        if (never := _never_fits(agent, workflow, engine)) is not None:
            at_key(i, "llm_config", f"agents[{i}].llm_config.max_tokens", never)
    return problems


def _never_fits(agent: Agent, workflow: Workflow, engine: EngineConfig) -> str | None:
    """An agent whose max_tokens alone exceeds a tokens-per-minute/day limit could never be admitted."""
    max_tokens = agent.llm_config.max_tokens or DEFAULT_MAX_OUTPUT_TOKENS
    name, _ = engine.provider_for(agent.llm_config)
    for scope, limits in engine.effective_rate_limits(name, agent.llm_config.model, workflow.rate_limit_config):
        for tier in ("tokens_per_minute", "tokens_per_day"):
            limit = getattr(limits, tier)
            if limit is not None and max_tokens >= limit:
                return (f"max_tokens {max_tokens} can never run under {scope} {tier} {limit}: every request "
                        f"reserves its prompt plus max_tokens; lower max_tokens or raise the limit")
    return None


def raised_limit_warnings(workflow: Workflow, engine: EngineConfig) -> list[str]:
    """A workflow's rate_limit_config tier above its provider's: a workflow only lowers limits, so that
    tier silently does nothing (``RateLimitConfig.tightest``)."""
    wanted = workflow.rate_limit_config
    if wanted is None:
        return []
    providers = []
    for agent in workflow.agents:
        try:
            providers.append(engine.provider_for(agent.llm_config)[0])
        except ValueError:
            continue  # an unknown provider is a lint error of its own
    warnings = []
    for provider in dict.fromkeys(providers):
        ceiling = engine.provider_limits(provider)
        for tier in RATE_FIELDS:
            if tier not in wanted.model_fields_set or (limit := getattr(ceiling, tier)) is None:
                continue
            value = getattr(wanted, tier)
            if value is None or value > limit:
                shown = "null (no limit)" if value is None else str(value)
                warnings.append(f"rate_limit_config.{tier} {shown} is above the engine config's {limit} for "
                                f"provider {provider!r}: a workflow can only lower limits, so {limit} applies")
    return warnings


def effective_limits(workflow: Workflow, engine: EngineConfig) -> list[tuple[str, str, RateLimitConfig]]:
    """(agent, scope, limits) for every agent: what the limiter will hold each of its requests to."""
    rows = []
    for agent in workflow.agents:
        name, _ = engine.provider_for(agent.llm_config)
        for scope, limits in engine.effective_rate_limits(name, agent.llm_config.model, workflow.rate_limit_config):
            rows.append((f"{agent.module}.{agent.name}", scope, limits))
    return rows


Loaded = dict[Path, SpecSet]


def _specs_of(root: Path, loaded: Loaded | None) -> SpecSet:
    """The folder's specs, read once per lint run when the caller shares ``loaded`` between the checks."""
    folder = root if root.is_dir() else root.parent
    if loaded is None:
        return load_folder(folder)
    if folder not in loaded:
        loaded[folder] = load_folder(folder)
    return loaded[folder]


def lint_warnings(paths: list[Path], loaded: Loaded | None = None) -> list[str]:
    """What may not fail but deserves a look: a worst case above the budget it runs under, a workflow
    rate limit above the engine's (it has no effect)."""
    warnings = []
    for root in paths:
        folder_specs = _specs_of(root, loaded)
        for name, workflow in folder_specs.workflows.items():
            source = folder_specs.sources[name]
            if root.is_file() and source != str(root):
                continue
            engine = folder_specs.engine
            found = budget_warnings(workflow, engine) + raised_limit_warnings(workflow, engine)
            warnings.extend(f"{source}: warning: {w}" for w in found)
    return warnings


def limits_table(paths: list[Path], loaded: Loaded | None = None) -> str:
    """The effective rate limits of every agent, one line per limiter scope."""
    rows = []
    for root in paths:
        specs = _specs_of(root, loaded)
        for name, workflow in sorted(specs.workflows.items()):
            rows.extend((f"{name} / {agent}", scope, lim) for agent, scope, lim in effective_limits(workflow, specs.engine))
    width = max([len(r[0]) for r in rows] + [16]) + 2
    scope_width = max([len(r[1]) for r in rows] + [5]) + 2
    lines = [f"{'workflow / agent':<{width}}{'scope':<{scope_width}}{'rpm':>8}{'rph':>8}{'rpd':>8}{'tpm':>10}"
             f"{'tpd':>11}{'conc':>6}"]
    for label, scope, lim in rows:
        cells = [lim.requests_per_minute, lim.requests_per_hour, lim.requests_per_day, lim.tokens_per_minute,
                 lim.tokens_per_day, lim.concurrent_requests]
        shown = ["-" if c is None else str(c) for c in cells]
        lines.append(f"{label:<{width}}{scope:<{scope_width}}{shown[0]:>8}{shown[1]:>8}{shown[2]:>8}{shown[3]:>10}"
                     f"{shown[4]:>11}{shown[5]:>6}")
    return "\n".join(lines)


def _cross_workflow_problems(doc: LocatedDocument, workflow: Workflow, known: set[str]) -> list[SpecProblem]:
    """``wait_for`` must name workflows of the same folder: an unknown one would never publish its Asset."""
    return [
        doc.problem(("wait_for", i), f"unknown workflow {name!r}; known: {', '.join(sorted(known))}")
        for i, name in enumerate(workflow.wait_for)
        if name not in known
    ]


def lint_paths(paths: list[Path], loaded: Loaded | None = None) -> list[SpecProblem]:
    """Every problem in the given spec files or folders, sorted by file and line."""
    problems: list[SpecProblem] = []
    for root in paths:
        folder_specs = _specs_of(root, loaded)
        selected = {str(root)} if root.is_file() else None
        for path, error in folder_specs.errors.items():
            if selected is None or path in selected:
                problems.extend(error.problems)
        for name, workflow in folder_specs.workflows.items():
            source = folder_specs.sources[name]
            if selected is None or source in selected:
                doc = parse_yaml(Path(source).read_text(encoding="utf-8"), source)  # for lines and columns
                problems.extend(_cross_workflow_problems(doc, workflow, set(folder_specs.workflows)))
                problems.extend(_semantic_problems(doc, workflow, folder_specs.engine))
    return sorted(set(problems), key=lambda p: (p.file, p.line, p.column, p.field))
