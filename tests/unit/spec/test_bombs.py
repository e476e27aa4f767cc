"""Hostile and malformed YAML: every case ends in a SpecError naming file and line, within a second.

Each case runs with both event parsers the loader can use (see conftest.py): libyaml and the
pure-Python fallback.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path

import pytest

from erp_agents.exceptions import SpecError
from erp_agents.spec.loader import load_spec_text
from erp_agents.spec.yaml_reader import MAX_DEPTH, MAX_LINES, MAX_NODES, MAX_SPEC_BYTES, MAX_YAML_NODES
from erp_agents.spec.models import Workflow

FILE = "bomb.yaml"
BASIC = (Path(__file__).resolve().parents[3] / "dags" / "specs" / "basic_workflow.yaml").read_text(encoding="utf-8")


def _laughs(levels: int = 9) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join(['*a' + str(i - 1)] * 10)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def _merge_laughs(levels: int = 9) -> str:
    keys = ", ".join(f"k{i}: x" for i in range(10))
    lines = [f"a0: &a0 {{{keys}}}"]
    lines += [f"a{i}: &a{i} {{<<: [{', '.join(['*a' + str(i - 1)] * 10)}]}}" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def _alias_chain(links: int = 5) -> str:
    """Each anchor nests the previous one 40 levels deeper: fine in the text, too deep once expanded."""
    lines = ["a0: &a0 " + "[" * 40 + "x" + "]" * 40]
    lines += [f"a{i}: &a{i} " + "[" * 40 + f"*a{i - 1}" + "]" * 40 for i in range(1, links)]
    return "\n".join(lines) + "\n"


def _anchors(count: int = 2000) -> str:
    return "".join(f"- &a{i} v{i}\n" for i in range(count)) + "- [" + ", ".join(f"*a{i}" for i in range(count)) + "]\n"


BOMBS = {
    "billion laughs": (_laughs(), "document expands to more than 200000 nodes (alias bomb?)"),
    "billion laughs through merge keys": (_merge_laughs(), "(alias bomb?)"),
    "recursive alias": ("a: &a [x, *a]\n", "recursive alias"),
    "recursive merge key": ("a: &a {b: 1, <<: *a}\n", "recursive alias"),
    "merge key of a scalar": ("kind: Workflow\n<<: 5\n", "expected a mapping or list of mappings for merging"),
    "alias chain nesting deeper once expanded": (_alias_chain(), f"aliases nest deeper than {MAX_DEPTH} levels"),
    "thousands of anchors": (_anchors(), "a spec must be a mapping, got list"),
    "10,000 nested flow lists": ("[" * 10_000 + "]" * 10_000, f"nesting deeper than {MAX_DEPTH} levels"),
    "10,000 nested flow mappings": ("{a: " * 10_000 + "1" + "}" * 10_000, f"nesting deeper than {MAX_DEPTH} levels"),
    "deep block sequence": ("".join(" " * i + "-\n" for i in range(1000)), f"nesting deeper than {MAX_DEPTH} levels"),
    "deep block mapping": ("".join(" " * i + "a:\n" for i in range(1000)), f"nesting deeper than {MAX_DEPTH} levels"),
    "deep mixed nesting on one line": ("- " + "[{a: " * 3000, f"nesting deeper than {MAX_DEPTH} levels"),
    # libyaml stops at the first '- ' inside a flow mapping, PyYAML's scanner at the 51st open bracket
    "block entries inside deep flow mappings": ("- [{a: " * 3000, "bomb.yaml:1:"),
    "document over the size limit": ("kind: Workflow\n" + "#" * MAX_SPEC_BYTES, f"larger than {MAX_SPEC_BYTES} bytes"),
    "very long single line over the size limit": ("name: " + "a" * 2 * MAX_SPEC_BYTES, "larger than"),
    "very long single line": (BASIC.replace("name: basic_workflow", "name: " + "a" * 200_000), "at most 200 characters"),
    "a hundred thousand blank lines": ("kind: Workflow\n" + "\n" * 100_000, f"more than {MAX_LINES} lines"),
    "integer of 100,001 digits": ("kind: Workflow\nversion: 1" + "0" * 100_000 + "\n", "integer longer than 100"),
    "integer just over the int() digit limit": (BASIC.replace("max_parallel_agents: 3", "max_parallel_agents: " + "9" * 4301), "integer longer than 100"),
    "sexagesimal integer of 100,000 parts": ("kind: Workflow\nversion: 1" + ":0" * 100_000 + "\n", "integer longer than 100"),
    "too many nodes": ("kind: Workflow\nx: [" + "a, " * 60_000 + "]\n", f"document has more than {MAX_YAML_NODES} nodes"),
    "too many aliases": ("kind: Workflow\na: &a [x]\nx: [" + "*a, " * 60_000 + "]\n", f"more than {MAX_YAML_NODES} nodes"),
    "wide alias fan-out": ("kind: Workflow\na: &a [" + "x, " * 99 + "x]\nx: [" + "*a, " * 2_100 + "]\n",
                           f"document expands to more than {MAX_NODES} nodes (alias bomb?)"),
}
# PyYAML's pure-Python parser takes 20 to 30 microseconds a node, so it reads MAX_YAML_NODES nodes
# in more than a second (libyaml: about 0.1 s); each is still refused at the first node over.
PURE_PYTHON_SECONDS = {"too many nodes": 5.0, "too many aliases": 5.0}


def _assert_refused(text: str, expected: str, seconds: float = 1.0) -> SpecError:
    """Refused with ``expected`` within ``seconds`` of this thread's CPU time: parsing is CPU-bound,
    and CPU time, unlike wall time, does not count what other processes on a busy machine take.

    The objects earlier tests left in this process are frozen first: otherwise each garbage
    collection the parse triggers walks them all, and in the full suite (Airflow, the e2e tests'
    clients) that walk, not the parse, took most of a second.
    """
    gc.collect()
    gc.freeze()
    try:
        start = time.thread_time()
        with pytest.raises(SpecError) as err:
            load_spec_text(text, FILE)
        elapsed = time.thread_time() - start
    finally:
        gc.unfreeze()
    assert elapsed < seconds, f"took {elapsed:.2f}s of CPU"
    for problem in err.value.problems:
        assert problem.file == FILE and problem.line >= 1 and problem.column >= 1 and problem.message
    assert expected in str(err.value), str(err.value)[:500]
    return err.value


@pytest.mark.parametrize("name", list(BOMBS))
def test_bomb_refused_within_a_second(name, yaml_parser):
    seconds = PURE_PYTHON_SECONDS.get(name, 1.0) if yaml_parser == "python" else 1.0
    _assert_refused(*BOMBS[name], seconds=seconds)


def test_deep_nesting_points_at_the_line_that_goes_too_deep(yaml_parser):
    text = "kind: Workflow\nparams:\n  x: " + "[" * 100 + "]" * 100 + "\n"
    problem = _assert_refused(text, "nesting").first
    assert problem.message == "invalid YAML: nesting deeper than 50 levels" and problem.field == ""
    # the 51st level (49th bracket) for our composer; PyYAML's scanner, which runs ahead, the 51st bracket
    assert (problem.line, problem.column) == ((3, 54) if yaml_parser == "libyaml" else (3, 56))


def test_nesting_within_the_limit_is_fine(yaml_parser):
    text = BASIC.replace('period: "2026-10"', "deep: " + "[" * (MAX_DEPTH - 3) + "]" * (MAX_DEPTH - 3))
    assert isinstance(load_spec_text(text, FILE), Workflow)


MALFORMED = {
    # the safe constructor trusts its own patterns and raised ValueError, KeyError, IndexError or AttributeError
    "impossible date": ('period: "2026-10"', "period: 2026-02-30", "bomb.yaml:13:11: params.period: invalid YAML: "
                        "'2026-02-30' is not a valid timestamp: day is out of range for month"),
    "impossible time zone": ('period: "2026-10"', "period: 2001-12-14t21:59:43.10-99:00", "is not a valid timestamp"),
    "!!bool on other text": ("jitter: true", "jitter: !!bool maybe", "'maybe' is not a valid bool"),
    "!!int on empty text": ("max_parallel_agents: 3", "max_parallel_agents: !!int ''", "'' is not a valid int"),
    "!!int on a bad hex literal": ("max_parallel_agents: 3", "max_parallel_agents: !!int 0x", "'0x' is not a valid int"),
    "!!float on a sign": ("cost_budget: 1.00", "cost_budget: !!float '-'", "'-' is not a valid float"),
    "!!timestamp on other text": ("timeout: 1800", "timeout: !!timestamp soon", "'soon' is not a valid timestamp"),
    # unhashable or non-string keys
    "kind is a list": ("kind: Workflow", "kind: [Workflow]", "bomb.yaml:2:1: kind: kind must be one of"),
    "kind is a mapping": ("kind: Workflow", "kind: {a: 1}", "kind must be one of"),
    "mapping as a key": ('period: "2026-10"', "? {a: 1}\n  : x", "bomb.yaml:13:5: params: keys must be strings"),
    "list as a key": ('period: "2026-10"', "[a]: x", "bomb.yaml:13:3: params: keys must be strings"),
    "integer key": ("timeout: 1800", "1: x", "bomb.yaml:10:1: <document>: keys must be strings"),
    "null key in an agent": ("    priority: 8", "    priority: 8\n    null: x", "bomb.yaml:26:5: agents[0]: keys must be strings"),
    "yes as a key": ('period: "2026-10"', "yes: 1", "params: keys must be strings"),
    # characters PyYAML refuses before parsing (a ReaderError, not a MarkedYAMLError)
    "NUL character": ("name: basic_workflow", 'name: "a\x00b"', "bomb.yaml:4:9: <document>: invalid YAML: unacceptable character #x0000"),
    "lone surrogate": ("name: basic_workflow", "name: a\ud800", "unacceptable character #xd800"),
    "unsafe tag": ("name: basic_workflow", "name: !!python/object/apply:os.system [true]", "could not determine a constructor"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_scalar_or_key_is_a_spec_error(name, yaml_parser):
    old, new, expected = MALFORMED[name]
    assert old in BASIC
    _assert_refused(BASIC.replace(old, new, 1), expected)


def test_thousands_of_validation_errors_are_reported_quickly(yaml_parser):
    text = "kind: Workflow\nname: x\nagents: [" + "{}, " * 2000 + "]\n"
    error = _assert_refused(text, "agents[1999].prompt_template: Field required")
    assert len(error.problems) == 6000


def _reversed_chain(agents: int) -> str:
    """``a1 -> a2 -> ... -> a0``: a dependency chain as long as the agent list."""
    head = "kind: Workflow\nname: chain\nagents:\n- &base {name: a0, llm_config: {model: m}, prompt_template: p}\n"
    return head + "".join(
        f"- {{<<: *base, name: a{i}, dependencies: [a{i + 1 if i < agents - 1 else 0}]}}\n" for i in range(1, agents)
    )


def test_a_5000_agent_dependency_chain_loads():
    """Longer than the recursion limit: the cycle search and the levels must not recurse per agent."""
    spec = load_spec_text(_reversed_chain(5000), FILE)
    assert isinstance(spec, Workflow) and len(spec.agents) == 5000


def test_a_chain_longer_than_the_node_budget_is_refused():
    """At 8 nodes an agent (the alias counts), MAX_YAML_NODES stops a chain at about 6,250 agents."""
    _assert_refused(_reversed_chain(6500), f"document has more than {MAX_YAML_NODES} nodes")
