"""The dependency graph of a workflow: resolution, cycle detection, topological order, parallel levels.

Pure functions over a validated ``Workflow``. Problems come back with the spec path of the entry
that caused them, so the loader can point at the exact YAML line.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from erp_agents.spec.models import Agent, Workflow

SpecPath = tuple[str | int, ...]


@dataclass(frozen=True)
class GraphProblem:
    path: SpecPath
    message: str


class GraphError(ValueError):
    def __init__(self, problems: list[GraphProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(p.message for p in problems))


@dataclass(frozen=True)
class AgentGraph:
    """Resolved dependencies: agent name -> upstream agent names, plus order and levels."""

    upstream: dict[str, tuple[str, ...]]
    order: tuple[str, ...]
    levels: tuple[tuple[str, ...], ...]

    def downstream(self, name: str) -> tuple[str, ...]:
        return tuple(n for n in self.order if name in self.upstream[n])


def _resolve(ref: str, agents: dict[str, Agent]) -> tuple[str | None, str | None]:
    """Resolve ``name`` or ``Module.name`` to an agent name; else (None, error message)."""
    module, _, name = ref.rpartition(".")
    if name in agents:
        if not module or agents[name].module.lower() == module.lower():
            return name, None
        return None, (
            f"dependency {ref!r}: agent {name!r} is in module {agents[name].module!r}, not {module!r}"
        )
    qualified = [f"{a.module}.{a.name}" for a in agents.values()]
    close = difflib.get_close_matches(ref, list(agents) + qualified, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known agents: {', '.join(sorted(agents))}"
    return None, f"unknown dependency {ref!r}{hint}"


def _find_cycle(upstream: dict[str, tuple[str, ...]]) -> list[str] | None:
    """Return one cycle as a closed path of names, or None."""
    state: dict[str, int] = {}  # 1 = on stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in upstream[node]:
            if state.get(dep) == 1:
                return stack[stack.index(dep) :] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in upstream:
        if node not in state and (found := visit(node)):
            return found
    return None


def _levels(upstream: dict[str, tuple[str, ...]], rank: dict[str, int]) -> list[list[str]]:
    """Kahn's algorithm by level; within a level, higher priority first, then spec order."""
    remaining = {name: set(deps) for name, deps in upstream.items()}
    levels: list[list[str]] = []
    while remaining:
        ready = [n for n, deps in remaining.items() if not deps]
        ready.sort(key=lambda n: rank[n])
        levels.append(ready)
        for n in ready:
            del remaining[n]
        for deps in remaining.values():
            deps.difference_update(ready)
    return levels


def build_graph(workflow: Workflow) -> AgentGraph:
    """Resolve every dependency and order the agents; raise GraphError listing every problem."""
    agents = {a.name: a for a in workflow.agents}
    problems: list[GraphProblem] = []
    upstream: dict[str, tuple[str, ...]] = {}
    for i, agent in enumerate(workflow.agents):
        resolved: list[str] = []
        for j, ref in enumerate(agent.dependencies):
            name, error = _resolve(ref, agents)
            if error:
                problems.append(GraphProblem(("agents", i, "dependencies", j), error))
            elif name == agent.name:
                problems.append(GraphProblem(("agents", i, "dependencies", j), f"agent {name!r} depends on itself"))
            elif name in resolved:
                problems.append(GraphProblem(("agents", i, "dependencies", j), f"dependency {ref!r} resolves to {name!r} twice"))
            else:
                resolved.append(name)  # type: ignore[arg-type]
        upstream[agent.name] = tuple(resolved)
    if problems:
        raise GraphError(problems)
    if cycle := _find_cycle(upstream):
        index = next(i for i, a in enumerate(workflow.agents) if a.name == cycle[0])
        raise GraphError([GraphProblem(("agents", index, "dependencies"), "dependency cycle: " + " -> ".join(cycle))])
    rank = {a.name: (-a.priority, i) for i, a in enumerate(workflow.agents)}
    levels = _levels(upstream, rank)
    order = tuple(name for level in levels for name in level)
    return AgentGraph(upstream=upstream, order=order, levels=tuple(tuple(level) for level in levels))
