from __future__ import annotations

import random

import pytest

from erp_agents import Agent, LLMConfig, Workflow
from erp_agents.spec.graph import MAX_HINTS, GraphError, build_graph


def _wf(*specs: tuple[str, str, list[str]]) -> Workflow:
    return Workflow(
        name="w",
        agents=[
            Agent(name=n, module=m, llm_config=LLMConfig(model="gpt-4o-mini"), prompt_template="p", dependencies=d)
            for n, m, d in specs
        ],
    )


def test_topological_order_and_levels():
    graph = build_graph(
        _wf(("report", "Finance", ["analyse", "stock"]), ("analyse", "Finance", ["load"]), ("load", "Finance", []),
            ("stock", "Inventory", []))
    )
    assert graph.levels == (("load", "stock"), ("analyse",), ("report",))
    assert graph.order == ("load", "stock", "analyse", "report")
    assert graph.upstream["report"] == ("analyse", "stock")


def test_priority_orders_agents_within_a_level():
    wf = Workflow(
        name="w",
        agents=[
            Agent(name="low", llm_config=LLMConfig(model="m"), prompt_template="p", priority=1),
            Agent(name="high", llm_config=LLMConfig(model="m"), prompt_template="p", priority=9),
        ],
    )
    assert build_graph(wf).levels == (("high", "low"),)


def test_cycle_is_printed():
    with pytest.raises(GraphError) as err:
        build_graph(_wf(("a", "HR", ["b"]), ("b", "HR", ["c"]), ("c", "HR", ["a"])))
    assert err.value.problems[0].message == "dependency cycle: a -> b -> c -> a"
    assert err.value.problems[0].path == ("agents", 0, "dependencies")


def test_unknown_dependency_names_closest_agent():
    with pytest.raises(GraphError) as err:
        build_graph(_wf(("payroll_export", "HR", []), ("close", "Finance", ["payrol_export"])))
    assert err.value.problems[0].message == "unknown dependency 'payrol_export'; did you mean 'payroll_export'?"
    assert err.value.problems[0].path == ("agents", 1, "dependencies", 0)


def test_cross_module_dependency_is_checked_against_module():
    graph = build_graph(_wf(("payroll_export", "HR", []), ("close", "Finance", ["hr.payroll_export"])))
    assert graph.upstream["close"] == ("payroll_export",)
    with pytest.raises(GraphError, match="agent 'payroll_export' is in module 'HR', not 'Inventory'"):
        build_graph(_wf(("payroll_export", "HR", []), ("close", "Finance", ["Inventory.payroll_export"])))


def test_self_dependency_rejected():
    with pytest.raises(GraphError, match="agent 'a' depends on itself"):
        build_graph(_wf(("a", "HR", ["a"])))


def _chain(n: int, *, closed: bool = False) -> Workflow:
    """a0 depends on a1, ..., a(n-1) on nothing, or on a0 when ``closed``."""
    return Workflow(
        name="w",
        agents=[
            Agent(name=f"a{i}", llm_config=LLMConfig(model="m"), prompt_template="p",
                  dependencies=[f"a{i + 1}"] if i < n - 1 else (["a0"] if closed else []))
            for i in range(n)
        ],
    )


def test_a_5000_agent_chain_is_ordered_without_recursion():
    graph = build_graph(_chain(5000))
    assert len(graph.levels) == 5000
    assert graph.order == tuple(f"a{i}" for i in reversed(range(5000)))


def test_a_5000_agent_cycle_is_found_without_recursion():
    with pytest.raises(GraphError) as err:
        build_graph(_chain(5000, closed=True))
    names = err.value.problems[0].message.removeprefix("dependency cycle: ").split(" -> ")
    assert names == [f"a{i}" for i in range(5000)] + ["a0"]


def _reference_levels(upstream: dict[str, tuple[str, ...]], rank: dict[str, tuple[int, int]]) -> list[list[str]]:
    """The quadratic level-by-level algorithm graph.py used before."""
    remaining = {name: set(deps) for name, deps in upstream.items()}
    levels = []
    while remaining:
        ready = sorted((n for n, deps in remaining.items() if not deps), key=lambda n: rank[n])
        levels.append(ready)
        for n in ready:
            del remaining[n]
        for deps in remaining.values():
            deps.difference_update(ready)
    return levels


@pytest.mark.parametrize("seed", range(20))
def test_levels_match_the_simple_algorithm(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 60)
    agents = [
        Agent(name=f"a{i}", llm_config=LLMConfig(model="m"), prompt_template="p", priority=rng.randint(1, 5),
              dependencies=[f"a{j}" for j in rng.sample(range(i), k=min(i, rng.randint(0, 3)))])
        for i in range(n)
    ]
    rng.shuffle(agents)
    graph = build_graph(Workflow(name="w", agents=agents))
    rank = {a.name: (-a.priority, i) for i, a in enumerate(agents)}
    assert [list(level) for level in graph.levels] == _reference_levels(graph.upstream, rank)


def test_many_unknown_dependencies_are_all_reported_and_the_first_get_hints():
    agents = [Agent(name=f"agent_{i:04d}", module="HR", llm_config=LLMConfig(model="m"), prompt_template="p",
                    dependencies=[f"agnt_{i - 1:04d}"] if i else []) for i in range(3000)]
    with pytest.raises(GraphError) as err:
        build_graph(Workflow(name="w", agents=agents))
    problems = err.value.problems
    assert len(problems) == 2999
    assert [p.path for p in problems] == [("agents", i, "dependencies", 0) for i in range(1, 3000)]
    hinted = [p for p in problems if "did you mean" in p.message]
    assert [p.message for p in hinted[:2]] == [
        "unknown dependency 'agnt_0000'; did you mean 'agent_0000'?",
        "unknown dependency 'agnt_0001'; did you mean 'agent_0001'?",
    ]
    assert len(hinted) == MAX_HINTS
    assert problems[-1].message == f"unknown dependency 'agnt_2998' (one of 2999; names are suggested for the first {MAX_HINTS})"


@pytest.mark.parametrize("typo, meant", [
    ("agent_1234x", "agent_1234"),   # the start is intact
    ("agnt_1234", "agent_1234"),     # the end is intact
    ("HR.agnt_1234", "HR.agent_1234"),
])
def test_hints_among_thousands_of_agents_find_the_closest_name(typo, meant):
    agents = [Agent(name=f"agent_{i:04d}", module="HR", llm_config=LLMConfig(model="m"), prompt_template="p")
              for i in range(3000)]
    agents.append(Agent(name="late", module="HR", llm_config=LLMConfig(model="m"), prompt_template="p", dependencies=[typo]))
    with pytest.raises(GraphError) as err:
        build_graph(Workflow(name="w", agents=agents))
    assert err.value.problems[0].message == f"unknown dependency {typo!r}; did you mean {meant!r}?"


def test_a_name_close_to_none_lists_a_few_agents():
    agents = [Agent(name=f"agent_{i:02d}", llm_config=LLMConfig(model="m"), prompt_template="p") for i in range(30)]
    agents.append(Agent(name="z", llm_config=LLMConfig(model="m"), prompt_template="p", dependencies=["qqqqqqqqqqqq"]))
    with pytest.raises(GraphError) as err:
        build_graph(Workflow(name="w", agents=agents))
    assert err.value.problems[0].message == (
        "unknown dependency 'qqqqqqqqqqqq'; known agents: "
        + ", ".join(f"agent_{i:02d}" for i in range(10)) + " and 21 more"
    )
