from __future__ import annotations

import textwrap

import pytest

from erp_agents.exceptions import SpecError
from erp_agents.spec.discovery import load_folder
from erp_agents.spec.loader import load_spec_text
from erp_agents.spec.models import EngineConfig, Workflow

VALID = textwrap.dedent(
    """\
    kind: Workflow
    version: 1
    name: wf
    agents:
      - name: loader
        module: HR
        llm_config: {model: gpt-4o-mini}
        prompt_template: load
      - name: writer
        module: Finance
        llm_config: {model: gpt-4o-mini}
        prompt_template: "write {{ agents.loader.output }}"
        dependencies: [HR.loader]
    """
)


def _problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as err:
        load_spec_text(text, "specs/x.yaml")
    return [str(p) for p in err.value.problems]


def test_valid_spec_loads():
    wf = load_spec_text(VALID, "x.yaml")
    assert isinstance(wf, Workflow)
    assert [a.name for a in wf.agents] == ["loader", "writer"]
    assert wf.agents[1].dependencies == ("HR.loader",)


def test_invalid_yaml_names_line(yaml_parser):
    said = {"libyaml": "did not find expected ',' or ']'", "python": "expected ',' or ']', but got '<stream end>'"}
    assert _problems("kind: Workflow\nname: [unclosed\n") == [f"specs/x.yaml:3:1: <document>: invalid YAML: {said[yaml_parser]}"]


def test_unknown_key_names_line_and_field():
    text = VALID.replace("prompt_template: load", "prompt_template: load\n    priorty: 3")
    assert _problems(text) == ["specs/x.yaml:9:5: agents[0].priorty: unknown key"]


def test_wrong_type_names_line_and_field():
    text = VALID.replace("module: HR", "module: HR\n    timeout: soon")
    assert _problems(text) == [
        "specs/x.yaml:7:5: agents[0].timeout: Input should be a valid number, unable to parse string as a number"
    ]


def test_missing_field_names_parent_line():
    text = VALID.replace("    prompt_template: load\n", "")
    assert _problems(text) == ["specs/x.yaml:5:5: agents[0].prompt_template: Field required"]


def test_duplicate_agent_name():
    text = VALID.replace("name: writer", "name: loader").replace("[HR.loader]", "[]")
    assert _problems(text) == ["specs/x.yaml:4:1: agents: duplicate agent name 'loader'"]


def test_cycle_error_points_at_dependencies():
    text = VALID.replace("prompt_template: load", "prompt_template: load\n    dependencies: [writer]")
    assert _problems(text) == ["specs/x.yaml:9:5: agents[0].dependencies: dependency cycle: loader -> writer -> loader"]


def test_unknown_dependency_points_at_entry():
    text = VALID.replace("[HR.loader]", "[HR.loadr]")
    assert _problems(text) == [
        "specs/x.yaml:13:20: agents[1].dependencies[0]: unknown dependency 'HR.loadr'; did you mean 'HR.loader'?"
    ]


def test_duplicate_yaml_key_is_an_error():
    text = VALID.replace("name: wf", "name: wf\nname: other")
    assert _problems(text) == ["specs/x.yaml:4:1: name: duplicate key"]


def test_unknown_kind_and_version():
    assert _problems(VALID.replace("kind: Workflow", "kind: Pipeline")) == [
        "specs/x.yaml:1:1: kind: kind must be one of Workflow, EngineConfig; got 'Pipeline'"
    ]
    assert _problems(VALID.replace("version: 1", "version: 7")) == [
        "specs/x.yaml:2:1: version: unknown spec version 7; supported versions: 1"
    ]


def test_non_mapping_document():
    assert _problems("- just\n- a list\n") == ["specs/x.yaml:1:1: <document>: a spec must be a mapping, got list"]


def test_alias_bomb_refused():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join(['*a' + str(i - 1)] * 10)}]" for i in range(1, 9)]
    problems = _problems("\n".join(lines) + "\n")
    assert len(problems) == 1 and "more than 200000 nodes (alias bomb?)" in problems[0]


def test_unsafe_tags_refused():
    problems = _problems("kind: !!python/object/apply:os.system ['true']\n")
    assert problems[0].startswith("specs/x.yaml:1:7: <document>: invalid YAML: could not determine a constructor")


def test_folder_keeps_good_specs_when_one_is_broken(tmp_path):
    (tmp_path / "good.yaml").write_text(VALID)
    (tmp_path / "bad.yaml").write_text(VALID.replace("name: wf", "name: wf2").replace("[HR.loader]", "[nope]"))
    (tmp_path / "engine.yaml").write_text("kind: EngineConfig\nversion: 1\nmax_tool_rounds: 4\n")
    specs = load_folder(tmp_path)
    assert list(specs.workflows) == ["wf"]
    assert list(specs.errors) == [str(tmp_path / "bad.yaml")]
    assert "unknown dependency 'nope'" in str(specs.errors[str(tmp_path / "bad.yaml")])
    assert isinstance(specs.engine, EngineConfig) and specs.engine.max_tool_rounds == 4


def test_folder_rejects_duplicate_workflow_names(tmp_path):
    (tmp_path / "a.yaml").write_text(VALID)
    (tmp_path / "b.yaml").write_text(VALID)
    specs = load_folder(tmp_path)
    assert list(specs.workflows) == ["wf"]
    assert "workflow name 'wf' is already used by another spec" in str(specs.errors[str(tmp_path / "b.yaml")])


@pytest.mark.parametrize("name", ["/etc/passwd", "../../secrets.md"])
def test_prompt_file_cannot_leave_the_prompt_folders(name):
    text = VALID.replace("prompt_template: load", f"prompt_file: {name}")
    assert _problems(text) == ["specs/x.yaml:8:5: agents[0].prompt_file: prompt_file must be a relative path without '..'"]


def test_prompt_file_is_read_from_the_prompt_folders():
    wf = load_spec_text(VALID.replace("prompt_template: load", "prompt_file: payroll_export.md"), "specs/x.yaml")
    assert wf.agents[0].prompt_template.startswith("You are the payroll accountant")
    assert wf.agents[0].prompt_file == "payroll_export.md"


def test_prompt_file_symlink_leaving_its_folder_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text("the database password is hunter2")
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "innocent.md").symlink_to(outside / "secret.md")
    text = VALID.replace("prompt_template: load", "prompt_file: innocent.md")
    with pytest.raises(SpecError, match="resolves outside its prompt folder"):
        load_spec_text(text, str(specs / "x.yaml"))


def test_agent_max_retries_next_to_its_retry_policy_names_file_line_and_agent():
    text = VALID.replace("prompt_template: load", "prompt_template: load\n    max_retries: 5\n    retry_policy: {max_retries: 2}")
    assert _problems(text) == [
        "specs/x.yaml:5:5: agents[0]: give max_retries or retry_policy, not both: set retry_policy.max_retries instead"
    ]


def test_a_notifier_field_of_the_other_type_names_file_line_and_target():
    text = VALID + "notifications:\n  on_partial:\n    - {type: smtp, to: ops@example.com, url: 'https://hooks.example/x'}\n"
    assert _problems(text) == ["specs/x.yaml:16:7: notifications.on_partial[0]: url applies to a webhook notifier "
                               "only; an smtp notifier sends through conn_id"]


def test_prompt_file_next_to_prompt_template_names_file_line_and_field():
    text = VALID.replace("prompt_template: load", "prompt_template: load\n    prompt_file: payroll_export.md")
    assert _problems(text) == ["specs/x.yaml:9:5: agents[0].prompt_file: give prompt_template or prompt_file, not both"]


def test_agents_without_a_module_take_the_workflows():
    text = VALID.replace("name: wf", "name: wf\nmodule: Finance").replace("    module: Finance\n", "")
    wf = load_spec_text(text, "x.yaml")
    assert isinstance(wf, Workflow)
    assert [a.module for a in wf.agents] == ["HR", "Finance"]


def test_an_invalid_workflow_module_is_reported_once():
    text = VALID.replace("name: wf", "name: wf\nmodule: 9lives").replace("    module: Finance\n", "")
    assert _problems(text) == ["specs/x.yaml:4:1: module: String should match pattern '^[A-Za-z][A-Za-z0-9_]*$'"]
