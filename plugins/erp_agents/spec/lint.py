"""Lint: the loader's own validation plus what only a whole folder can see."""

from __future__ import annotations

from pathlib import Path

from erp_agents.costs.pricing import has_price
from erp_agents.exceptions import SpecError, SpecProblem
from erp_agents.spec.discovery import load_folder
from erp_agents.spec.loader import LocatedDocument, parse_yaml
from erp_agents.spec.models import EngineConfig, Workflow
from erp_agents.tools.registry import UnknownToolError, default_registry


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
        for j, name in enumerate(agent.tool_names()):
            try:
                registry.qualified_name(name)
            except UnknownToolError as exc:
                at_key(i, "tools", f"agents[{i}].tools[{j}]", str(exc))
        try:
            _, provider = engine.provider_for(agent.llm_config)
        except ValueError as exc:
            at_key(i, "llm_config", f"agents[{i}].llm_config.provider", str(exc))
            continue
        if not has_price(agent.llm_config.model, provider.type, overrides):
            at_key(i, "llm_config", f"agents[{i}].llm_config.model",
                   f"no price for model {agent.llm_config.model!r}: add it to EngineConfig cost_config.model_costs")
    return problems


def _cross_workflow_problems(doc: LocatedDocument, workflow: Workflow, known: set[str]) -> list[SpecProblem]:
    """``wait_for`` must name workflows of the same folder: an unknown one would never publish its Asset."""
    return [
        doc.problem(("wait_for", i), f"unknown workflow {name!r}; known: {', '.join(sorted(known))}")
        for i, name in enumerate(workflow.wait_for)
        if name not in known
    ]


def lint_paths(paths: list[Path]) -> list[SpecProblem]:
    """Every problem in the given spec files or folders, sorted by file and line."""
    problems: list[SpecProblem] = []
    for root in paths:
        if root.is_file():
            folder_specs = load_folder(root.parent)
            selected = {str(root)}
        else:
            folder_specs = load_folder(root)
            selected = None
        for path, error in folder_specs.errors.items():
            if selected is None or path in selected:
                problems.extend(error.problems)
        for name, workflow in folder_specs.workflows.items():
            source = folder_specs.sources[name]
            if selected is None or source in selected:
                doc = parse_yaml(Path(source).read_text(encoding="utf-8"), source)  # for lines and columns
                problems.extend(_cross_workflow_problems(doc, workflow, set(folder_specs.workflows)))
                try:
                    problems.extend(_semantic_problems(doc, workflow, folder_specs.engine))
                except SpecError as exc:
                    problems.extend(exc.problems)
    return sorted(set(problems), key=lambda p: (p.file, p.line, p.column, p.field))
