"""for_each in a spec: static problems are parse errors with file, line and field."""

from __future__ import annotations

import textwrap

import pytest

from erp_agents.exceptions import SpecError
from erp_agents.spec.loader import load_spec_text


def _spec(reviewer: str) -> str:
    return textwrap.dedent("""\
        kind: Workflow
        name: wf
        agents:
          - name: lister
            llm_config: {model: gpt-4o-mini}
            prompt_template: "list"
          - name: reviewer
            llm_config: {model: gpt-4o-mini}
            prompt_template: "review {{ item }}"
        """) + textwrap.indent(textwrap.dedent(reviewer), "    ")


def _problems(reviewer: str) -> list[tuple[int, str, str]]:
    with pytest.raises(SpecError) as err:
        load_spec_text(_spec(reviewer), "specs/wf.yaml")
    assert {p.file for p in err.value.problems} == {"specs/wf.yaml"}
    return [(p.line, p.field, p.message) for p in err.value.problems]


def test_tool_and_agent_sources_load_with_defaults():
    wf = load_spec_text(_spec("for_each: {tool: finance.list_open_invoices, arguments: {type: AR}}\n"), "wf.yaml")
    reviewer = wf.agents[1]
    assert (reviewer.for_each.tool, reviewer.for_each.arguments, reviewer.chunk_size, reviewer.max_items) == (
        "finance.list_open_invoices", {"type": "AR"}, 50, 2000)
    wf = load_spec_text(_spec("for_each: {agent: lister}\ndependencies: [lister]\nchunk_size: 7\n"), "wf.yaml")
    assert (wf.agents[1].for_each.agent, wf.agents[1].chunk_size) == ("lister", 7)


@pytest.mark.parametrize(("reviewer", "line", "field", "text"), [
    ("for_each: {}\n", 10, "agents[1].for_each", "exactly one source: tool or agent"),
    ("for_each: {tool: t, agent: lister}\ndependencies: [lister]\n", 10, "agents[1].for_each",
     "exactly one source"),
    ("for_each: {agent: lister}\n", 7, "agents[1]", "for_each.agent 'lister' must be listed in dependencies"),
    ("for_each: {agent: lister, arguments: {a: 1}}\ndependencies: [lister]\n", 10, "agents[1].for_each",
     "arguments applies to a tool source only"),
    ("chunk_size: 10\n", 7, "agents[1]", "chunk_size applies to a for_each agent only"),
    ("for_each: {tool: t}\nchunk_size: 0\n", 11, "agents[1].chunk_size", "greater than or equal to 1"),
    ("for_each: {tool: t}\nmax_items: -1\n", 11, "agents[1].max_items", "greater than or equal to 1"),
    ("for_each: {tool: t, limit: 3}\n", 10, "agents[1].for_each.limit", "unknown key"),
])
def test_static_problems_name_file_line_and_field(reviewer, line, field, text):
    [(found_line, found_field, message)] = _problems(reviewer)
    assert (found_line, found_field) == (line, field)
    assert text in message


def test_a_dumped_workflow_loads_again():
    """The engine hands a workflow to another process as its JSON dump, defaults included."""
    from erp_agents import Agent, Workflow

    llm = {"model": "gpt-4o-mini"}
    flow = Workflow(name="round_trip", module="Finance", agents=[
        Agent(name="plain", module="Finance", llm_config=llm, prompt_template="Check {{ params.quarter }}."),
        Agent(name="each", module="Finance", llm_config=llm, prompt_template="Review {{ item }}.",
              for_each={"tool": "t"}, chunk_size=7),
    ])
    again = Workflow.model_validate(flow.model_dump(mode="json"))
    assert again == flow
    assert again.agents[1].chunk_size == 7
