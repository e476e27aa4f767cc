from __future__ import annotations

import pytest

from erp_agents.tools.registry import ToolRegistry, UnknownToolError, default_registry


def test_default_registry_is_the_erp_allow_list():
    names = set(default_registry().tools)
    assert {"hr.get_headcount", "finance.get_ledger_balance", "inventory.get_stock_levels",
            "compliance.lookup_policy"} <= names
    assert all("." in name for name in names)


def test_bare_names_resolve_when_unambiguous():
    registry = ToolRegistry({"hr.count": len, "finance.count": len, "finance.total": sum})
    assert registry.qualified_name("total") == "finance.total"
    with pytest.raises(UnknownToolError, match="ambiguous: finance.count, hr.count"):
        registry.qualified_name("count")
    with pytest.raises(UnknownToolError, match="unknown tool 'os.system'"):
        registry.qualified_name("os.system")


def test_inline_openai_format_binds_to_the_registered_implementation():
    [tool] = default_registry().build(
        [{"type": "function", "function": {"name": "get_headcount", "description": "Headcount by department",
                                           "parameters": {"type": "object"}}}]
    )
    assert tool.name == "get_headcount"
    assert tool.description == "Headcount by department"
    # the schema comes from the function's type hints, not from the spec
    assert "department" in tool.function_schema.json_schema["properties"]


def test_tool_schema_comes_from_type_hints_and_docstring():
    [tool] = default_registry().build(["finance.get_ledger_balance"])
    schema = tool.function_schema.json_schema
    assert schema["required"] == ["account"]
    assert schema["properties"]["account"]["type"] == "string"
    assert schema["properties"]["account"].get("description")


def test_a_raising_tool_returns_the_error():
    def broken(x: int) -> int:
        """Fails.

        Args:
            x: anything.
        """
        raise RuntimeError("ledger offline")

    [tool] = ToolRegistry({"ops.broken": broken}).build(["ops.broken"])
    assert tool.function(1) == {"error": "RuntimeError: ledger offline"}
