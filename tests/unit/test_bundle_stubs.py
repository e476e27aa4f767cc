from __future__ import annotations

import pytest

from erp_agents.bundle import MARKER, stub_name, write_stubs
from erp_agents.exceptions import SpecError
from erp_agents.spec.discovery import ENGINE_CONFIG_ENV, engine_config_file, load_folder


def test_one_module_per_workflow_spec_and_stale_ones_removed(tmp_path):
    specs, target = tmp_path / "specs", tmp_path / "modules"
    (specs / "team").mkdir(parents=True)
    (specs / "a.yaml").write_text("kind: Workflow\n")
    (specs / "team" / "b.yml").write_text("kind: Workflow\n")
    (specs / "engine.yaml").write_text("kind: EngineConfig\nversion: 1\n")
    assert write_stubs(specs, target) == {"a.py", "team__b.py"}
    text = (target / "a.py").read_text()
    assert text.startswith(f"{MARKER} {specs / 'a.yaml'}")
    assert f"engine_config={str(specs / 'engine.yaml')!r}" in text
    (target / "user_module.py").write_text("# someone else's file\n")
    (specs / "a.yaml").unlink()
    assert write_stubs(specs, target) == {"team__b.py"}
    assert sorted(p.name for p in target.glob("*.py")) == ["team__b.py", "user_module.py"]


def test_names_and_engine_detection(tmp_path):
    assert stub_name(tmp_path / "x" / "y.yaml", tmp_path) == "x__y.py"
    (tmp_path / "w.yaml").write_text("kind: Workflow\nname: kind\n")
    (tmp_path / "e.yaml").write_text("# engine\nkind: 'EngineConfig'\n")
    assert engine_config_file([tmp_path / "w.yaml", tmp_path / "e.yaml"]) == tmp_path / "e.yaml"


@pytest.mark.parametrize("text", [
    "kind: EngineConfig  # the one engine config\n",
    "{kind: EngineConfig, version: 1}\n",
    "version: 1\nkind: \"EngineConfig\"\n",
])
def test_engine_config_is_found_by_parsing(tmp_path, text):
    (tmp_path / "w.yaml").write_text("kind: Workflow\ndescription: not an EngineConfig\n")
    (tmp_path / "e.yaml").write_text(text)
    assert engine_config_file([tmp_path / "w.yaml", tmp_path / "e.yaml"]) == tmp_path / "e.yaml"


def test_yaml_and_yml_of_one_name_are_both_reported(tmp_path):
    specs, target = tmp_path / "specs", tmp_path / "modules"
    specs.mkdir()
    (specs / "a.yaml").write_text("kind: Workflow\n")
    (specs / "a.yml").write_text("kind: Workflow\n")
    assert write_stubs(specs, target) == {"a__yaml.py", "a__yml.py"}
    for name in ("a__yaml.py", "a__yml.py"):
        with pytest.raises(SpecError, match="a.yml and a.yaml give the same DAG module a.py"):
            exec(compile((target / name).read_text(), name, "exec"), {})


def test_bundle_and_discovery_read_the_engine_config_named_by_the_environment(tmp_path, monkeypatch):
    specs, target = tmp_path / "specs", tmp_path / "modules"
    specs.mkdir()
    (specs / "w.yaml").write_text("kind: Workflow\n")
    elsewhere = tmp_path / "engine.yaml"
    elsewhere.write_text("kind: EngineConfig\nversion: 1\nmax_tool_rounds: 3\n")
    monkeypatch.setenv(ENGINE_CONFIG_ENV, str(elsewhere))
    write_stubs(specs, target)
    assert f"engine_config={str(elsewhere)!r}" in (target / "w.py").read_text()
    assert load_folder(specs).engine.max_tool_rounds == 3


def test_engine_config_variable_naming_a_workflow_is_an_error(tmp_path, monkeypatch):
    wrong = tmp_path / "wf.yaml"
    wrong.write_text("kind: Workflow\nname: wf\nagents: [{name: a, llm_config: {model: m}, prompt_template: p}]\n")
    monkeypatch.setenv(ENGINE_CONFIG_ENV, str(wrong))
    errors = load_folder(tmp_path / "empty").errors
    assert "names a Workflow, not an EngineConfig" in str(errors[str(wrong)])
