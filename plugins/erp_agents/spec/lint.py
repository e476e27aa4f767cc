"""Lint: the loader's own validation plus what only a whole folder can see."""

from __future__ import annotations

from pathlib import Path

from erp_agents.costs.pricing import has_price
from erp_agents.exceptions import SpecError, SpecProblem
from erp_agents.spec.discovery import load_folder
from erp_agents.spec.loader import LocatedDocument, parse_yaml
from erp_agents.spec.models import EngineConfig, Workflow
from erp_agents.tools.registry import UnknownToolError, default_registry


def _agent_line(path: str, index: int, key: str) -> tuple[int, int]:
    doc: LocatedDocument = parse_yaml(Path(path).read_text(encoding="utf-8"), path)
    return doc.locate(("agents", index, key))


def _semantic_problems(path: str, workflow: Workflow, engine: EngineConfig) -> list[SpecProblem]:
    """Unregistered tools, models without a price, pools the engine config does not declare:
    valid YAML, but the run would fail or wait forever."""
    problems = []
    registry = default_registry()
    pools = engine.pools()
    for i, agent in enumerate(workflow.agents):
        if agent.pool and agent.pool not in pools:
            line, col = _agent_line(path, i, "pool")
            problems.append(SpecProblem(
                path, line, col, f"agents[{i}].pool",
                f"pool {agent.pool!r} is not in the engine config; known: {', '.join(sorted(pools))}",
            ))
        for j, name in enumerate(agent.tool_names()):
            try:
                registry.qualified_name(name)
            except UnknownToolError as exc:
                line, col = _agent_line(path, i, "tools")
                problems.append(SpecProblem(path, line, col, f"agents[{i}].tools[{j}]", str(exc)))
        try:
            _, provider = engine.provider_for(agent.llm_config)
        except ValueError as exc:
            line, col = _agent_line(path, i, "llm_config")
            problems.append(SpecProblem(path, line, col, f"agents[{i}].llm_config.provider", str(exc)))
            continue
        overrides = {k: v.model_dump() for k, v in engine.cost_config.model_costs.items()}
        if not has_price(agent.llm_config.model, provider.type, overrides):
            line, col = _agent_line(path, i, "llm_config")
            problems.append(SpecProblem(
                path, line, col, f"agents[{i}].llm_config.model",
                f"no price for model {agent.llm_config.model!r}: add it to EngineConfig cost_config.model_costs",
            ))
    return problems


def _cross_workflow_problems(path: str, workflow: Workflow, known: set[str]) -> list[SpecProblem]:
    """``wait_for`` must name workflows of the same folder: an unknown one would never publish its Asset."""
    problems = []
    doc = parse_yaml(Path(path).read_text(encoding="utf-8"), path)
    for i, name in enumerate(workflow.wait_for):
        if name not in known:
            line, col = doc.locate(("wait_for", i))
            problems.append(SpecProblem(path, line, col, f"wait_for[{i}]",
                                        f"unknown workflow {name!r}; known: {', '.join(sorted(known))}"))
    return problems


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
                problems.extend(_cross_workflow_problems(source, workflow, set(folder_specs.workflows)))
                try:
                    problems.extend(_semantic_problems(source, workflow, folder_specs.engine))
                except SpecError as exc:
                    problems.extend(exc.problems)
    return sorted(set(problems), key=lambda p: (p.file, p.line, p.column, p.field))
