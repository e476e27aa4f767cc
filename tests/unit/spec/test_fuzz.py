"""Fuzzing the loader: any mutation of a valid spec ends in a model or in a SpecError naming file and line.

Nothing else may escape and no example may take a second. Runs are derandomized, so CI sees the
same examples every time. Each test runs with libyaml and with the pure-Python parser (conftest.py).
"""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from erp_agents.exceptions import SpecError
from erp_agents.spec import yaml_reader as reader
from erp_agents.spec.loader import load_spec_text, parse_yaml
from erp_agents.spec.models import EngineConfig, Workflow

FILE = "fuzz.yaml"
SPEC_DIR = Path(__file__).resolve().parents[3] / "dags" / "specs"
ENGINE = textwrap.dedent(
    """\
    kind: EngineConfig
    version: 1
    default_provider: openai
    providers:
      openai: {type: openai, conn_id: openai_default, request_timeout: 60,
               rate_limit_config: {requests_per_minute: 500, concurrent_requests: 4}}
      local: {type: openai_compatible, conn_id: llm_sim, pool: llm_pool}
    rate_limit_config: {requests_per_minute: 60, tokens_per_minute: 100000}
    cost_config:
      model_costs:
        gpt-4o-mini: {input: 0.00015, output: 0.0006}
      global_budget: 25.0
    monitor_config: {enabled: true, log_prompts: false, status_window_hours: 48}
    default_retry_policy: {max_retries: 3, strategy: linear_backoff, base_delay: 1, max_delay: 30}
    max_tool_rounds: 6
    """
)
SPECS = [p.read_text(encoding="utf-8") for p in sorted(SPEC_DIR.rglob("*.yaml"))] + [ENGINE]
FUZZ = settings(
    max_examples=300,
    deadline=5000,  # a hang, not a busy machine: one example takes milliseconds
    derandomize=True,
    database=None,
    # the only function-scoped fixture is yaml_parser, which picks the parser and holds no state
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)

# Pieces of YAML syntax and of the values the loader has to refuse, next to plain random text.
YAML_BITS = [
    ":", ": ", "- ", "-", "[", "]", "{", "}", ",", "? ", "|", ">-", "'", '"', "#", "\t", "\n", "  ", "\\",
    "&a ", "*a", "&a [1]", "<<: ", "<<: *a", "<<: [*a, *a]", "!!binary ", "!!int ", "!!bool ", "!!float ",
    "!!timestamp ", "!!set ", "!!omap ", "!!str ", "!!python/object/apply:os.system ", "!foo ", "%YAML 1.1\n",
    "---\n", "...\n", "~", "null", "yes", "on", "1: x", "[a]: x", "1e999", ".nan", "-.inf", "0x", "0b1", "0o17",
    "1:30:00", "2026-02-30", "2026-13-01", "2001-12-14t21:59:43.10-99:00", "9" * 120, "9" * 5000,
    "1" + ":0" * 300, "\x00", "\x07", "\ufeff", "\u2028", "\x85", "\ud800", "\U0001f600", "é",
    "[" * 60, "{a: " * 60, "dependencies: [", "prompt_file: ", "prompt_file: nope.md", "kind: ", "agents: ",
]
SNIPPET = st.one_of(st.sampled_from(YAML_BITS), st.text(max_size=12), st.text(st.characters(codec="utf-8"), max_size=6))


def _assert_contract(text: str) -> None:
    """A Workflow or EngineConfig, or a SpecError whose every problem is located in this file."""
    try:
        spec = load_spec_text(text, FILE)
    except SpecError as exc:
        event("SpecError")  # shown by pytest --hypothesis-show-statistics
        assert exc.problems
        lines = len(text.splitlines()) + 1
        for problem in exc.problems:
            assert problem.file == FILE, problem
            assert 1 <= problem.line <= lines, problem
            assert problem.column >= 1, problem
            assert problem.message, problem
            assert str(problem)
    else:
        event(type(spec).__name__)
        assert isinstance(spec, (Workflow, EngineConfig))


# (a) text-level mutations


def _insert(draw: st.DrawFn, text: str) -> str:
    at = draw(st.integers(0, len(text)))
    return text[:at] + draw(SNIPPET) + text[at:]


def _delete(draw: st.DrawFn, text: str) -> str:
    at = draw(st.integers(0, len(text)))
    return text[:at] + text[at + draw(st.integers(1, 40)) :]


def _replace(draw: st.DrawFn, text: str) -> str:
    at = draw(st.integers(0, max(len(text) - 1, 0)))
    return text[:at] + draw(SNIPPET) + text[at + 1 :]


def _swap_lines(draw: st.DrawFn, text: str) -> str:
    lines = text.split("\n")
    i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
    lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines)


def _duplicate_line(draw: st.DrawFn, text: str) -> str:
    lines = text.split("\n")
    i = draw(st.integers(0, len(lines) - 1))
    return "\n".join(lines[: i + 1] + [lines[i]] * draw(st.integers(1, 3)) + lines[i + 1 :])


def _truncate(draw: st.DrawFn, text: str) -> str:
    return text[: draw(st.integers(0, len(text)))]


TEXT_MUTATIONS = [_insert, _delete, _replace, _swap_lines, _duplicate_line, _truncate]


@st.composite
def mutated_text(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SPECS))
    for _ in range(draw(st.integers(1, 4))):
        text = draw(st.sampled_from(TEXT_MUTATIONS))(draw, text)
    return text


@FUZZ
@given(mutated_text())
def test_text_mutations_end_in_a_model_or_a_located_spec_error(yaml_parser, text):
    _assert_contract(text)


# (b) structure-level mutations: parse, change the data, dump, load again

ODD_NUMBERS = [10**100, 10**30, -(10**18), 2**63, -1, 0, -0.5, 1e308, -1e308, float("inf"), float("-inf"), float("nan")]
JSONISH = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.sampled_from(ODD_NUMBERS), st.floats(), st.text(max_size=12),
        st.sampled_from(["", "Workflow", "EngineConfig", "exponential_backoff", "gpt-4o-mini", "HR.payroll_export"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers(), st.none(), st.booleans()), inner, max_size=4),
    ),
    max_leaves=12,
)
KNOWN_KEYS = ["name", "module", "agents", "dependencies", "llm_config", "model", "prompt_template", "prompt_file",
              "tools", "retry_policy", "priority", "timeout", "providers", "kind", "version", "unknown_key"]


def _slots(data: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key) pair holding a value, depth first."""
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in list(items):
        out.append((data, key))
        _slots(value, out)
    return out


def _agents(data: dict[str, Any]) -> list[dict[str, Any]]:
    agents = data.get("agents")
    return [a for a in agents if isinstance(a, dict)] if isinstance(agents, list) else []


def _mutate(draw: st.DrawFn, data: dict[str, Any]) -> None:
    op = draw(st.sampled_from(["replace", "drop", "add_key", "rename_agent", "add_dependency", "odd_number", "empty"]))
    slots = _slots(data, [])
    agents = _agents(data)
    if op in ("replace", "drop", "odd_number", "empty") and slots:
        container, key = draw(st.sampled_from(slots))
        if op == "drop":
            del container[key]
        else:
            values = {"replace": JSONISH, "odd_number": st.sampled_from(ODD_NUMBERS),
                      "empty": st.sampled_from([None, [], {}, ""])}[op]
            container[key] = draw(values)
    elif op == "add_key":
        dicts = [data] + [c[k] for c, k in slots if isinstance(c[k], dict)]
        target = draw(st.sampled_from(dicts))
        target[draw(st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=8)))] = draw(JSONISH)
    elif op in ("rename_agent", "add_dependency") and agents:
        agent = draw(st.sampled_from(agents))
        names = [str(a.get("name")) for a in agents]
        qualified = [f"{a.get('module')}.{a.get('name')}" for a in agents]
        other = draw(st.one_of(st.sampled_from(names + qualified + ["nope", "Finance.nope", ""]), st.text(max_size=8)))
        if op == "rename_agent":
            agent["name"] = other
        else:  # random edges: cycles, self-loops, duplicates and unknown names all come up
            deps = agent.get("dependencies")
            agent["dependencies"] = (deps if isinstance(deps, list) else []) + [other]


@st.composite
def mutated_data(draw: st.DrawFn) -> str:
    data = copy.deepcopy(draw(st.sampled_from(PARSED)))
    for _ in range(draw(st.integers(1, 5))):
        _mutate(draw, data)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


PARSED = [yaml.safe_load(text) for text in SPECS]


@FUZZ
@given(mutated_data())
def test_structure_mutations_end_in_a_model_or_a_located_spec_error(yaml_parser, text):
    _assert_contract(text)


def test_unmutated_specs_load(yaml_parser):
    for text in SPECS:
        assert isinstance(load_spec_text(text, FILE), (Workflow, EngineConfig))


# (c) the loader's two ways through a document: straight from the events to data and marks (the
# common case), or through the node tree, its index and PyYAML's safe constructor (anchors, merge
# keys, unusual tags). The long way is forced here: both must give the same data, marks or error.


def _outcome(text: str) -> tuple[str, Any]:
    try:
        doc = parse_yaml(text, FILE)
    except SpecError as exc:
        return "error", str(exc)
    return "data", (repr(doc.data), doc.marks)


def _the_long_way(parser: Any, file: str) -> NoReturn:
    raise reader._NotPlain


@pytest.mark.skipif(reader._CParser is None, reason="the short way needs libyaml")
@FUZZ
@given(st.one_of(mutated_text(), mutated_data()))
def test_the_short_and_the_long_way_agree(text):
    short = _outcome(text)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reader, "_load_plain", _the_long_way)
        long = _outcome(text)
    assert short == long
