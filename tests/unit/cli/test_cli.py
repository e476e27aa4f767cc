from __future__ import annotations

import json
import textwrap

from erp_agents.cli import main
from tests.conftest import ROOT


def test_lint_passes_on_the_examples(capsys):
    assert main(["lint", str(ROOT / "dags/specs")]) == 0
    assert capsys.readouterr().out == ""


def test_lint_reports_file_line_column_field(tmp_path, capsys):
    spec = tmp_path / "wf.yaml"
    spec.write_text(textwrap.dedent("""\
        kind: Workflow
        version: 1
        name: wf
        agents:
          - name: a
            llm_config: {model: gpt-4o-mini}
            prompt_template: p
            tools: [finance.no_such_tool]
          - name: b
            llm_config: {model: in-house-13b}
            prompt_template: p
        """))
    assert main(["lint", str(spec)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{spec}:8:5: agents[0].tools[0]: unknown tool 'finance.no_such_tool'; registered tools:")
    assert out[1] == (f"{spec}:10:5: agents[1].llm_config.model: no price for model 'in-house-13b': "
                      "add it to EngineConfig cost_config.model_costs")


def test_lint_reports_parse_errors_with_exit_code_1(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("kind: Workflow\nversion: 3\nname: x\nagents: []\n")
    assert main(["lint", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"{tmp_path / 'bad.yaml'}:2:1: version: unknown spec version 3; supported versions: 1" in out


def test_schema_is_the_models_json_schema(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "Workflow"
    assert schema["additionalProperties"] is False
    assert {"name", "agents"} <= set(schema["required"])
    assert "prompt_template" in schema["$defs"]["Agent"]["properties"]


def test_lint_checks_cross_workflow_references(tmp_path, capsys):
    (tmp_path / "a.yaml").write_text(textwrap.dedent("""\
        kind: Workflow
        version: 1
        name: a
        wait_for: [payroll_rn]
        agents:
          - {name: x, llm_config: {model: gpt-4o-mini}, prompt_template: p}
        """))
    assert main(["lint", str(tmp_path)]) == 1
    assert capsys.readouterr().out.strip() == f"{tmp_path / 'a.yaml'}:4:12: wait_for[0]: unknown workflow 'payroll_rn'; known: a"


def test_lint_checks_pools_against_the_engine_config(tmp_path, capsys):
    (tmp_path / "engine.yaml").write_text(textwrap.dedent("""\
        kind: EngineConfig
        version: 1
        providers:
          openai: {type: openai, conn_id: openai_default, pool: openai_pool}
        """))
    (tmp_path / "wf.yaml").write_text(textwrap.dedent("""\
        kind: Workflow
        version: 1
        name: wf
        agents:
          - {name: a, llm_config: {model: gpt-4o-mini}, prompt_template: p, pool: openai_pool}
          - name: b
            llm_config: {model: gpt-4o-mini}
            prompt_template: p
            pool: opneai_pool
        """))
    assert main(["lint", str(tmp_path)]) == 1
    assert capsys.readouterr().out.strip() == (
        f"{tmp_path / 'wf.yaml'}:9:5: agents[1].pool: pool 'opneai_pool' is not in the engine config; "
        "known: default_pool, openai_pool")


def test_lint_shows_effective_limits_and_refuses_an_agent_that_can_never_run(tmp_path, capsys):
    from erp_agents.cli import main

    (tmp_path / "engine.yaml").write_text(
        "kind: EngineConfig\nproviders:\n  openai:\n    rate_limit_config: {tokens_per_minute: 1000, concurrent_requests: 3}\n"
        "    model_rate_limits: {gpt-4o: {requests_per_minute: 7}}\n")
    (tmp_path / "w.yaml").write_text(
        "kind: Workflow\nname: w\nrate_limit_config: {concurrent_requests: 2}\nagents:\n"
        "  - name: big\n    llm_config: {model: gpt-4o, max_tokens: 1000}\n    prompt_template: x\n"
        "  - name: small\n    llm_config: {model: gpt-4o-mini, max_tokens: 100}\n    prompt_template: x\n")
    assert main(["lint", "--limits", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "agents[0].llm_config.max_tokens: max_tokens 1000 can never run under provider:openai tokens_per_minute 1000" in out
    rows = {tuple(line.split()[2:4]): line.split()[4:] for line in out.splitlines() if line.startswith("w / ")}
    assert rows[("Custom.big", "provider:openai")] == ["60", "3000", "50000", "1000", "-", "2"]
    assert rows[("Custom.big", "model:openai:gpt-4o")] == ["7", "-", "-", "-", "-", "2"]  # workflow lowers both
    assert ("Custom.small", "model:openai:gpt-4o") not in rows


def test_lint_refuses_a_for_each_tool_that_is_not_registered(tmp_path, capsys):
    from erp_agents.cli import main

    (tmp_path / "w.yaml").write_text(
        "kind: Workflow\nname: w\nagents:\n"
        "  - name: each\n    llm_config: {model: gpt-4o-mini, max_tokens: 100}\n    prompt_template: '{{ item }}'\n"
        "    for_each: {tool: finance.no_such_listing}\n")
    assert main(["lint", str(tmp_path)]) == 1
    assert "agents[0].for_each.tool:" in capsys.readouterr().out


def test_lint_warns_of_a_workflow_rate_limit_above_the_engines(tmp_path, capsys):
    (tmp_path / "engine.yaml").write_text(
        "kind: EngineConfig\nproviders:\n  openai:\n    rate_limit_config: {requests_per_minute: 300, tokens_per_minute: 50000}\n")
    (tmp_path / "w.yaml").write_text(
        "kind: Workflow\nname: w\nrate_limit_config: {requests_per_minute: 500, tokens_per_minute: 20000}\nagents:\n"
        "  - name: a\n    llm_config: {model: gpt-4o-mini, max_tokens: 100}\n    prompt_template: x\n")
    assert main(["lint", str(tmp_path)]) == 0  # a warning, not an error
    assert capsys.readouterr().out.splitlines() == [
        f"{tmp_path / 'w.yaml'}: warning: rate_limit_config.requests_per_minute 500 is above the engine config's 300 "
        "for provider 'openai': a workflow can only lower limits, so 300 applies"]


def test_lint_is_quiet_about_a_workflow_rate_limit_that_lowers_the_engines(tmp_path, capsys):
    (tmp_path / "w.yaml").write_text(
        "kind: Workflow\nname: w\nrate_limit_config: {requests_per_minute: 60, tokens_per_day: 10000000}\nagents:\n"
        "  - name: a\n    llm_config: {model: gpt-4o-mini, max_tokens: 100}\n    prompt_template: x\n")
    assert main(["lint", str(tmp_path)]) == 0
    assert capsys.readouterr().out == ""


def test_lint_refuses_inline_tool_parameters_that_do_not_describe_the_function(tmp_path):
    from erp_agents.lint import lint_paths

    spec = tmp_path / "tools.yaml"
    spec.write_text(
        "kind: Workflow\nversion: 1\nname: tools\nagents:\n"
        "  - name: good\n    llm_config: {model: gpt-4o-mini}\n    prompt_template: Check.\n    tools:\n"
        "      - {type: function, function: {name: get_ledger_balance,\n"
        "         parameters: {type: object, properties: {account: {type: string}}}}}\n"
        "  - name: bad\n    llm_config: {model: gpt-4o-mini}\n    prompt_template: Check.\n    tools:\n"
        "      - {type: function, function: {name: get_ledger_balance,\n"
        "         parameters: {type: object, properties: {acct: {type: string}}}}}\n")
    problems = lint_paths([spec])
    assert [(p.field, p.line) for p in problems] == [("agents[1].tools[0].function.parameters", 14)]  # its tools
    assert "names acct, which the registered function does not take" in problems[0].message
