"""Prompt templates: one per agent, valid Jinja, upstream placeholders and tool names as documented."""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
import pytest

from include.erp.tools import ERP_TOOLS

PROMPTS = Path(__file__).resolve().parents[3] / "include" / "erp" / "prompts"

# agent -> upstream agents whose output the prompt embeds
DEPENDENCIES: dict[str, set[str]] = {
    "headcount_snapshot": set(),
    "payroll_export": set(),
    "leave_liability": set(),
    "bank_loader": set(),
    "ledger_reconciler": {"bank_loader", "payroll_export"},
    "ap_aging": set(),
    "budget_variance": {"ledger_reconciler"},
    "month_end_report": {"budget_variance", "ap_aging", "inventory_valuation"},
    "stock_check": set(),
    "reorder_planner": {"stock_check"},
    "inventory_valuation": {"stock_check"},
    "policy_review": set(),
    "audit_followup": set(),
    "sox_controls_check": {"ledger_reconciler", "payroll_export"},
    "compliance_report": {"audit_followup", "sox_controls_check", "policy_review"},
}

TOOL_NAMES = {name.split(".", 1)[1] for name in ERP_TOOLS}


def test_one_file_per_agent() -> None:
    assert {p.stem for p in PROMPTS.glob("*.md")} == set(DEPENDENCIES)


@pytest.mark.parametrize("agent", sorted(DEPENDENCIES))
def test_placeholders_reference_exactly_the_upstream_agents(agent: str) -> None:
    text = (PROMPTS / f"{agent}.md").read_text(encoding="utf-8")
    referenced = set(re.findall(r"\{\{\s*agents\.(\w+)\.output\s*\}\}", text))
    assert referenced == DEPENDENCIES[agent]
    assert "{{ params.period }}" in text
    assert set(re.findall(r"\{\{\s*params\.(\w+)", text)) == {"period"}
    assert 4 <= len(text.strip().splitlines()) <= 10


@pytest.mark.parametrize("agent", sorted(DEPENDENCIES))
def test_prompt_names_real_tools(agent: str) -> None:
    text = (PROMPTS / f"{agent}.md").read_text(encoding="utf-8")
    used = set(re.findall(r"\b(get_\w+|reconcile_bank|lookup_policy)\b", text))
    assert used, agent
    assert used <= TOOL_NAMES, used - TOOL_NAMES
    assert "Use " in text


@pytest.mark.parametrize("agent", sorted(DEPENDENCIES))
def test_renders_with_strict_undefined(agent: str) -> None:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    template = env.from_string((PROMPTS / f"{agent}.md").read_text(encoding="utf-8"))
    agents = {name: {"output": f"<output of {name}>"} for name in DEPENDENCIES}
    rendered = template.render(agents=agents, params={"period": "2026-10"})
    assert "{{" not in rendered and "2026-10" in rendered
    for upstream in DEPENDENCIES[agent]:
        assert f"<output of {upstream}>" in rendered
    with pytest.raises(jinja2.UndefinedError):
        template.render(agents=agents, params={})
