from __future__ import annotations

import pytest

from erp_agents import Agent, LLMConfig, Workflow
from erp_agents.spec.graph import GraphError, build_graph


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
    assert graph.downstream("load") == ("analyse",)


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
