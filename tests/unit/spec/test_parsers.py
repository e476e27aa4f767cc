"""libyaml and the pure-Python fallback: the same data, positions and limits from either parser."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from erp_agents.exceptions import SpecError
from erp_agents.spec import yaml_reader as reader
from erp_agents.spec.loader import load_spec_text, parse_yaml
from erp_agents.spec.yaml_reader import MAX_LINES, MAX_SPEC_BYTES, MAX_YAML_NODES
from erp_agents.spec.models import Workflow

HAS_LIBYAML = reader._CParser is not None
SPEC_DIR = Path(__file__).resolve().parents[3] / "dags" / "specs"
SPECS = sorted(SPEC_DIR.rglob("*.yaml"))
# Aliases, merge keys and tags other than str/int/float/bool/null take the long way through
# PyYAML's safe constructor; the rest is indexed and constructed in one walk.
ODD_DOCUMENTS = {
    "merge keys": "base: &b {x: 1, y: [a, b]}\nmerged: {<<: *b, y: 2}\nlist: [*b, *b]\n",
    "tags": "s: !!set {a, b}\no: !!omap [{a: 1}, {b: 2}]\np: !!pairs [{a: 1}]\nbin: !!binary aGk=\n",
    "scalars": "d: 2026-10-01\nt: 2001-12-14t21:59:43.10-05:00\nf: 1e3\nh: 0x1f\ns: 1:30\nn: ~\nb: yes\nq: '1'\n",
    "value key": "a: {=: 1}\n",
    "explicit tags": "a: !!str 1\nb: !!float 1\nc: ! x\nd: !!map {e: !!seq [1]}\n",
}


def _located(text: str, use_libyaml: bool) -> tuple[object, dict]:
    before = reader.USE_LIBYAML
    reader.USE_LIBYAML = use_libyaml
    try:
        doc = parse_yaml(text, "x.yaml")
    finally:
        reader.USE_LIBYAML = before
    return doc.data, doc.marks


def _count_nodes(node: yaml.Node) -> int:
    count, todo = 0, [node]
    while todo:
        node = todo.pop()
        count += 1
        if isinstance(node, yaml.SequenceNode):
            todo += node.value
        elif isinstance(node, yaml.MappingNode):
            todo += [n for pair in node.value for n in pair]
    return count


@pytest.mark.skipif(not HAS_LIBYAML, reason="PyYAML was built without libyaml")
@pytest.mark.parametrize("text", [p.read_text(encoding="utf-8") for p in SPECS] + list(ODD_DOCUMENTS.values()),
                         ids=[p.name for p in SPECS] + list(ODD_DOCUMENTS))
def test_both_parsers_give_the_same_data_and_positions(text):
    fast, slow = _located(text, use_libyaml=True), _located(text, use_libyaml=False)
    assert fast == slow
    assert fast[0] == yaml.safe_load(text)


def test_positions_are_one_based_for_every_key_and_item(yaml_parser):
    text = textwrap.dedent(
        """\
        kind: Workflow
        agents:
          - name: a
            tools: [x, y]
          -   name: b
        """
    )
    assert parse_yaml(text, "x.yaml").marks == {
        (): (1, 1),
        ("kind",): (1, 1),
        ("agents",): (2, 1),
        ("agents", 0): (3, 5),
        ("agents", 0, "name"): (3, 5),
        ("agents", 0, "tools"): (4, 5),
        ("agents", 0, "tools", 0): (4, 13),
        ("agents", 0, "tools", 1): (4, 16),
        ("agents", 1): (5, 7),
        ("agents", 1, "name"): (5, 7),
    }


def test_structural_problems_are_reported_before_bad_scalars(yaml_parser):
    with pytest.raises(SpecError) as err:
        load_spec_text("kind: Workflow\nversion: !!int ''\nname: a\nname: b\n", "x.yaml")
    assert str(err.value) == "x.yaml:4:1: name: duplicate key"
    with pytest.raises(SpecError) as err:
        load_spec_text("kind: Workflow\nparams: {a: !!int '', b: 2026-02-30}\n", "x.yaml")
    assert str(err.value).startswith("x.yaml:2:13: params.a: invalid YAML: '' is not a valid int")


def _agent(i: int) -> str:
    """An agent like those of bench/parse.py, plus a retry policy: about 810 bytes, 26 lines, 40 nodes."""
    module = ("Finance", "HR", "Inventory", "Compliance")[i % 4]
    deps = [f"agent_{i - 10 + k:04d}" for k in (0, 1)] if i >= 10 else []
    lines = [
        f"- name: agent_{i:04d}",
        f"  module: {module}",
        f"  description: {module} check {i} of the month-end close",
        "  llm_config:",
        "    model: gpt-4o-mini",
        f"    temperature: 0.{i % 5}",
        f"    max_tokens: {400 + 100 * (i % 4)}",
        "  prompt_template: |",
        f"    You are the {module} agent number {i} of Northwind Components Ltd's month-end close.",
        "    For period {{ params.period }}, check the figures you are responsible for and list the three",
        "    most material findings, each with the amount involved and the account or record it concerns.",
    ]
    for dep in deps:
        lines += ["", f"    Findings of {dep}:", f"    {{{{ agents.{dep}.output }}}}"]
    lines += [
        "  tools:",
        f"  - {module.lower()}.lookup",
        f"  priority: {1 + (7 * i) % 10}",
        f"  critical: {str(i % 3 != 0).lower()}",
        f"  timeout: {300 + 60 * (i % 3)}",
        "  retry_policy: {max_retries: 4, strategy: linear_backoff, base_delay: 2, max_delay: 30}",
    ]
    if deps:
        lines += ["  dependencies:", *(f"  - {d}" for d in deps)]
    return "\n".join(lines) + "\n"


def test_a_thousand_agent_spec_is_within_every_limit(yaml_parser):
    text = "kind: Workflow\nname: big\nparams: {period: 2026-10}\nagents:\n" + "".join(_agent(i) for i in range(1000))
    assert len(text.encode()) < MAX_SPEC_BYTES and len(text.splitlines()) < MAX_LINES
    nodes = _count_nodes(yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    assert 30_000 < nodes < MAX_YAML_NODES  # six times the 5,000 nodes allowed before
    spec = load_spec_text(text, "big.yaml")
    assert isinstance(spec, Workflow) and len(spec.agents) == 1000
    assert spec.agents[999].dependencies == ("agent_0989", "agent_0990")


def test_without_libyaml_the_pure_python_parser_is_used(monkeypatch):
    used = []

    class Spy(reader._PyParser):
        def __init__(self, text: str) -> None:
            used.append(text)
            super().__init__(text)

    monkeypatch.setattr(reader, "_CParser", None)
    monkeypatch.setattr(reader, "_PyParser", Spy)
    text = (SPEC_DIR / "basic_workflow.yaml").read_text(encoding="utf-8")
    assert isinstance(load_spec_text(text, "x.yaml"), Workflow)
    assert used == [text]


@pytest.mark.parametrize("text, expected", [
    ("a: {x: !!int ''}\nb: !!int ''\n", "x.yaml:1:8: a.x: invalid YAML: '' is not a valid int"),
    ("a: !!int ''\nb: 1\nb: 2\n", "x.yaml:3:1: b: duplicate key"),
    ("? [a, b]\n: 1\nc: 2\n", "x.yaml:1:3: <document>: keys must be strings"),
    ("x: {1: a}\ny: [\n", "x.yaml:3:1: <document>: invalid YAML: "),  # the parser's error comes first
    ("[a]: 1\nb: *nope\n", "x.yaml:2:4: <document>: invalid YAML: found undefined alias 'nope'"),
    ("a: 1\n---\nb: 2\n", "x.yaml:2:1: <document>: invalid YAML: but found another document"),
])
def test_the_first_problem_is_the_same_either_way(text, expected, yaml_parser):
    with pytest.raises(SpecError) as err:
        parse_yaml(text, "x.yaml")
    assert str(err.value).startswith(expected)
