"""The ERP_TOOLS allow-list: names, signatures, docstrings and JSON-serialisable results."""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from collections.abc import Callable
from typing import Any

import pytest

from include.erp.tools import ERP_TOOLS

EXPECTED = {
    "hr.get_headcount": ["department"],
    "hr.get_payroll_summary": ["period", "department"],
    "hr.get_leave_balances": ["department", "min_days"],
    "finance.get_ledger_balance": ["account", "period"],
    "finance.reconcile_bank": ["period"],
    "finance.get_open_invoices": ["type", "overdue_only"],
    "finance.list_open_invoices": ["type", "overdue_only"],
    "finance.get_budget_vs_actual": ["cost_center", "period"],
    "inventory.get_stock_levels": ["warehouse", "category"],
    "inventory.get_reorder_candidates": ["warehouse"],
    "inventory.get_supplier_lead_times": ["supplier_id"],
    "compliance.lookup_policy": ["query"],
    "compliance.get_audit_findings": ["severity", "status"],
    "compliance.get_overdue_policy_reviews": ["as_of"],
}

SIMPLE_TYPES = {str, int, float, bool, type(None)}
# Tools that feed a for_each agent: they return the whole list of items, not a compact answer for a model.
ITEM_SOURCES = {"finance.list_open_invoices"}

# Calls covering every tool, including filtered variants.
CALLS: list[tuple[str, dict[str, Any]]] = [
    ("hr.get_headcount", {}),
    ("hr.get_headcount", {"department": "IT"}),
    ("hr.get_payroll_summary", {}),
    ("hr.get_payroll_summary", {"department": "CC400"}),
    ("hr.get_leave_balances", {}),
    ("hr.get_leave_balances", {"department": "Sales", "min_days": 5.5}),
    ("finance.get_ledger_balance", {"account": "1000"}),
    ("finance.get_ledger_balance", {"account": "6500", "period": "2026-10"}),
    ("finance.reconcile_bank", {}),
    ("finance.get_open_invoices", {}),
    ("finance.get_open_invoices", {"type": "AR", "overdue_only": True}),
    ("finance.list_open_invoices", {}),
    ("finance.list_open_invoices", {"type": "AP", "overdue_only": True}),
    ("finance.get_budget_vs_actual", {}),
    ("finance.get_budget_vs_actual", {"cost_center": "CC500"}),
    ("inventory.get_stock_levels", {}),
    ("inventory.get_stock_levels", {"warehouse": "WH-DAL", "category": "Motion Control"}),
    ("inventory.get_reorder_candidates", {}),
    ("inventory.get_reorder_candidates", {"warehouse": "WH-RNO"}),
    ("inventory.get_supplier_lead_times", {}),
    ("inventory.get_supplier_lead_times", {"supplier_id": "SUP-006"}),
    ("compliance.lookup_policy", {"query": "inventory"}),
    ("compliance.lookup_policy", {"query": "no such words"}),
    ("compliance.get_audit_findings", {}),
    ("compliance.get_audit_findings", {"severity": "high", "status": "all"}),
    ("compliance.get_overdue_policy_reviews", {}),
]


def args_section(doc: str) -> dict[str, str]:
    """Parse a Google-style ``Args:`` section into {name: description}."""
    lines = doc.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "Args:")
    indent = len(lines[start + 1]) - len(lines[start + 1].lstrip())
    args: dict[str, str] = {}
    current = None
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        width = len(line) - len(line.lstrip())
        if width == indent:
            match = re.match(r"\s*(\w+):\s*(.+)", line)
            assert match, line
            current = match[1]
            args[current] = match[2]
        elif width > indent and current:
            args[current] += " " + line.strip()
        else:
            break
    return args


def _simple(tp: Any) -> bool:
    if tp in SIMPLE_TYPES:
        return True
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return all(isinstance(v, (str, int, bool)) for v in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return all(_simple(a) for a in typing.get_args(tp))
    return False


def test_allow_list_names_and_parameters() -> None:
    assert list(ERP_TOOLS) == list(EXPECTED)
    for name, fn in ERP_TOOLS.items():
        module, function = name.split(".")
        assert fn.__name__ == function
        assert fn.__module__ == f"include.erp.tools.{module}"
        assert list(inspect.signature(fn).parameters) == EXPECTED[name], name


@pytest.mark.parametrize("name", list(EXPECTED))
def test_docstring_describes_tool_and_every_argument(name: str) -> None:
    fn = ERP_TOOLS[name]
    doc = inspect.getdoc(fn)
    assert doc, name
    first = doc.splitlines()[0]
    assert first.endswith(".") and len(first) > 20
    args = args_section(doc)
    assert set(args) == set(inspect.signature(fn).parameters), name
    assert all(len(text) > 10 for text in args.values())


@pytest.mark.parametrize("name", list(EXPECTED))
def test_full_simple_type_hints(name: str) -> None:
    fn = ERP_TOOLS[name]
    hints = typing.get_type_hints(fn)
    params = inspect.signature(fn).parameters
    assert set(hints) == set(params) | {"return"}, name
    for param in params:
        assert _simple(hints[param]), (name, param, hints[param])
    assert typing.get_origin(hints["return"]) is (list if name in ITEM_SOURCES else dict)


def test_signatures_defaults() -> None:
    defaults = {
        name: {p: v.default for p, v in inspect.signature(fn).parameters.items()}
        for name, fn in ERP_TOOLS.items()
    }
    assert defaults["hr.get_payroll_summary"] == {"period": "2026-10", "department": None}
    assert defaults["hr.get_leave_balances"] == {"department": None, "min_days": 0}
    assert defaults["finance.get_ledger_balance"]["account"] is inspect.Parameter.empty
    assert defaults["finance.get_open_invoices"] == {"type": None, "overdue_only": False}
    assert defaults["compliance.get_audit_findings"] == {"severity": None, "status": "open"}
    assert defaults["compliance.get_overdue_policy_reviews"] == {"as_of": "2026-10-31"}
    hints = typing.get_type_hints(ERP_TOOLS["finance.get_open_invoices"])
    assert typing.Literal["AP", "AR"] in typing.get_args(hints["type"])


def test_calls_cover_every_tool() -> None:
    assert {name for name, _ in CALLS} == set(ERP_TOOLS)


def _count_rows(value: Any) -> int:
    """The longest list anywhere in a result."""
    if isinstance(value, dict):
        return max((_count_rows(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return max([len(value)] + [_count_rows(v) for v in value])
    return 0


@pytest.mark.parametrize(("name", "kwargs"), CALLS)
def test_results_are_json_serialisable_and_compact(name: str, kwargs: dict[str, Any]) -> None:
    result = ERP_TOOLS[name](**kwargs)
    text = json.dumps(result, allow_nan=False)
    assert json.loads(text) == result  # no tuples, Decimals, dates or other non-JSON types
    if name in ITEM_SOURCES:  # one item per row, each small enough for one agent's prompt
        assert isinstance(result, list) and result and all(isinstance(item, dict) for item in result)
        assert max(len(json.dumps(item)) for item in result) < 2000
        return
    assert isinstance(result, dict)
    assert _count_rows(result) <= 20
    assert len(text) < 12000


def _pydantic_ai_schema(fn: Callable[..., Any]) -> tuple[str | None, dict[str, Any]]:
    tools = pytest.importorskip("pydantic_ai.tools")
    tool = tools.Tool(fn)
    return tool.description, tool.function_schema.json_schema


@pytest.mark.parametrize("name", list(EXPECTED))
def test_pydantic_ai_builds_described_schema(name: str) -> None:
    fn = ERP_TOOLS[name]
    description, schema = _pydantic_ai_schema(fn)
    assert description and description.startswith(inspect.getdoc(fn).splitlines()[0])  # type: ignore[union-attr]
    assert set(schema["properties"]) == set(EXPECTED[name])
    for prop in schema["properties"].values():
        assert prop.get("description"), (name, prop)
    required = {
        p for p, v in inspect.signature(fn).parameters.items() if v.default is inspect.Parameter.empty
    }
    assert set(schema.get("required", [])) == required
