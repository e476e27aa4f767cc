"""The dependency graph of a workflow: resolution, cycle detection, topological order, parallel levels.

Pure functions over a validated ``Workflow``. Problems come back with the spec path of the entry
that caused them, so the loader can point at the exact YAML line.
"""

from __future__ import annotations

import bisect
import difflib
from dataclasses import dataclass

from erp_agents.exceptions import GraphError, GraphProblem
from erp_agents.spec.models import Agent, Workflow

__all__ = ["AgentGraph", "GraphError", "GraphProblem", "build_graph"]


@dataclass(frozen=True)
class AgentGraph:
    """Resolved dependencies: agent name -> upstream agent names, plus order and levels."""

    upstream: dict[str, tuple[str, ...]]
    order: tuple[str, ...]
    levels: tuple[tuple[str, ...], ...]


MAX_HINTS = 20  # distinct unknown dependency names that get a closest-name hint
MAX_COMPARED = 200  # names difflib compares with each unknown one; past that, the nearest in sort order
MAX_LISTED = 10  # agent names listed when no name is close


class _Names:
    """Names sorted forwards and by their reversed text: a typo leaves either the start or the end of
    a name intact, so the closest names sort next to it in one order or the other."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.forwards = sorted(names)
        self.backwards = sorted(n[::-1] for n in names)

    def near(self, ref: str) -> list[str]:
        if len(self.names) <= MAX_COMPARED:
            return self.names
        half = MAX_COMPARED // 4
        i = bisect.bisect(self.forwards, ref)
        j = bisect.bisect(self.backwards, ref[::-1])
        by_start = self.forwards[max(i - half, 0) : i + half]
        by_end = [n[::-1] for n in self.backwards[max(j - half, 0) : j + half]]
        return list(dict.fromkeys(by_start + by_end))


class _Hints:
    """Closest-name hints for unknown dependencies. difflib is slow, so each unknown name is compared
    with at most MAX_COMPARED agent names, and only the first MAX_HINTS distinct unknown names get a
    hint; later ones say how many unknown dependencies there are."""

    def __init__(self, agents: dict[str, Agent], unknown: int) -> None:
        self.names = _Names(list(agents))
        self.qualified = _Names([f"{a.module}.{a.name}" for a in agents.values()])
        known = sorted(agents)
        more = f" and {len(known) - MAX_LISTED} more" if len(known) > MAX_LISTED else ""
        self.known = ", ".join(known[:MAX_LISTED]) + more
        self.unknown = unknown
        self.given: dict[str, str] = {}

    def message(self, ref: str) -> str:
        if (hint := self.given.get(ref)) is None:
            if len(self.given) >= MAX_HINTS:
                return (f"unknown dependency {ref!r} "
                        f"(one of {self.unknown}; names are suggested for the first {MAX_HINTS})")
            names = self.qualified if "." in ref else self.names  # Module.name is compared with Module.name
            close = difflib.get_close_matches(ref, names.near(ref), n=1, cutoff=0.5)
            hint = self.given[ref] = f"; did you mean {close[0]!r}?" if close else f"; known agents: {self.known}"
        return f"unknown dependency {ref!r}{hint}"


def _resolve(ref: str, agents: dict[str, Agent]) -> tuple[str | None, str | None]:
    """Resolve ``name`` or ``Module.name`` to an agent name; else (None, error message), and
    (None, None) for a name no agent has."""
    module, _, name = ref.rpartition(".")
    if name in agents:
        if not module or agents[name].module.lower() == module.lower():
            return name, None
        return None, (
            f"dependency {ref!r}: agent {name!r} is in module {agents[name].module!r}, not {module!r}"
        )
    return None, None


def _find_cycle(upstream: dict[str, tuple[str, ...]]) -> list[str] | None:
    """Return one cycle as a closed path of names, or None. Depth-first, with an explicit stack so
    that a chain of any length fits."""
    state: dict[str, int] = {}  # 1 = on the path, 2 = done
    for start in upstream:
        if start in state:
            continue
        state[start] = 1
        path = [start]
        pending = [iter(upstream[start])]
        while pending:
            for dep in pending[-1]:
                if state.get(dep) == 1:
                    return path[path.index(dep) :] + [dep]
                if dep not in state:
                    state[dep] = 1
                    path.append(dep)
                    pending.append(iter(upstream[dep]))
                    break
            else:
                state[path.pop()] = 2
                pending.pop()
    return None


def _levels(upstream: dict[str, tuple[str, ...]], rank: dict[str, tuple[int, int]]) -> list[list[str]]:
    """Kahn's algorithm by level (an agent's level is one more than its deepest dependency's);
    within a level, higher priority first, then spec order. Linear in agents plus dependencies."""
    waiting = {name: len(deps) for name, deps in upstream.items()}
    downstream: dict[str, list[str]] = {name: [] for name in upstream}
    for name, deps in upstream.items():
        for dep in deps:
            downstream[dep].append(name)
    ready = [n for n, count in waiting.items() if not count]
    levels: list[list[str]] = []
    while ready:
        ready.sort(key=rank.__getitem__)
        levels.append(ready)
        after = []
        for n in ready:
            for down in downstream[n]:
                waiting[down] -= 1
                if not waiting[down]:
                    after.append(down)
        ready = after
    return levels


def build_graph(workflow: Workflow) -> AgentGraph:
    """Resolve every dependency and order the agents; raise GraphError listing every problem."""
    agents = {a.name: a for a in workflow.agents}
    problems: list[GraphProblem] = []
    unknown: list[tuple[int, str]] = []  # (index in problems, name): worded below, with a hint
    upstream: dict[str, tuple[str, ...]] = {}
    for i, agent in enumerate(workflow.agents):
        resolved: list[str] = []
        for j, ref in enumerate(agent.dependencies):
            name, error = _resolve(ref, agents)
            if name is None:
                if error is None:
                    unknown.append((len(problems), ref))
                problems.append(GraphProblem(("agents", i, "dependencies", j), error or ""))
            elif name == agent.name:
                problems.append(GraphProblem(("agents", i, "dependencies", j), f"agent {name!r} depends on itself"))
            elif name in resolved:
                problems.append(GraphProblem(("agents", i, "dependencies", j), f"dependency {ref!r} resolves to {name!r} twice"))
            else:
                resolved.append(name)
        upstream[agent.name] = tuple(resolved)
    if unknown:
        hints = _Hints(agents, len(unknown))
        for k, ref in unknown:
            problems[k] = GraphProblem(problems[k].path, hints.message(ref))
    if problems:
        raise GraphError(problems)
    if cycle := _find_cycle(upstream):
        index = next(i for i, a in enumerate(workflow.agents) if a.name == cycle[0])
        raise GraphError([GraphProblem(("agents", index, "dependencies"), "dependency cycle: " + " -> ".join(cycle))])
    rank = {a.name: (-a.priority, i) for i, a in enumerate(workflow.agents)}
    levels = _levels(upstream, rank)
    order = tuple(name for level in levels for name in level)
    return AgentGraph(upstream=upstream, order=order, levels=tuple(tuple(level) for level in levels))
