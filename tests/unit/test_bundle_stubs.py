from __future__ import annotations

from erp_agents.bundle import MARKER, find_engine_config, stub_name, write_stubs


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
    assert find_engine_config([tmp_path / "w.yaml", tmp_path / "e.yaml"]) == tmp_path / "e.yaml"
