from __future__ import annotations

import pytest

from erp_agents.spec.models import InlineTool
from erp_agents.tools.registry import ToolRegistry, UnknownToolError, default_registry, errors_as_results


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
    inline = InlineTool.model_validate(
        {"type": "function", "function": {"name": "get_headcount", "description": "Headcount by department"}})
    [tool] = default_registry().build([inline])
    assert tool.name == "get_headcount"
    assert tool.description == "Headcount by department"
    # the schema comes from the function's type hints, not from the spec
    assert "department" in tool.function_schema.json_schema["properties"]


LEDGER_PARAMETERS = {"type": "object", "required": ["account"], "properties": {
    "account": {"type": "string", "pattern": "^[0-9]{4}$", "description": "a four-digit account number"},
    "period": {"type": "string"}}}


def _inline(parameters: dict) -> InlineTool:
    return InlineTool.model_validate({"type": "function", "function": {
        "name": "get_ledger_balance", "description": "Ledger balance", "parameters": parameters}})


def test_inline_parameters_are_what_the_model_is_shown():
    import asyncio

    from pydantic_ai.tools import ToolDefinition

    [tool] = default_registry().build([_inline(LEDGER_PARAMETERS)])
    derived = ToolDefinition(name=tool.name, parameters_json_schema=tool.function_schema.json_schema)
    shown = asyncio.run(tool.prepare(None, derived))
    assert shown.parameters_json_schema == LEDGER_PARAMETERS
    [plain] = default_registry().build(["finance.get_ledger_balance"])
    assert plain.prepare is None  # without inline parameters, the signature's schema


def test_arguments_outside_the_inline_parameters_go_back_to_the_model():
    from pydantic_ai import ModelRetry

    [tool] = default_registry().build([_inline(LEDGER_PARAMETERS)])
    with pytest.raises(ModelRetry, match=r"account: 'Cash' does not match '\^\[0-9\]\{4\}\$'"):
        tool.function(account="Cash")
    assert tool.function(account="1000")["account"] == "1000"  # within them: the function runs


@pytest.mark.parametrize(("parameters", "problem"), [
    ({"type": "object", "properties": {"account": {"type": "string"}, "currency": {"type": "string"}}},
     "parameters names currency, which the registered function does not take"),
    ({"type": "object", "properties": {"period": {"type": "string"}}},
     "parameters leaves out account, which the registered function needs"),
    ({"type": "array"}, "parameters must be a JSON Schema of type object"),
    ({"type": "object", "properties": {"account": {"type": "strin"}}}, "parameters is not a valid JSON Schema"),
])
def test_inline_parameters_that_do_not_describe_the_function_are_refused(parameters, problem):
    with pytest.raises(UnknownToolError, match=problem):
        default_registry().build([_inline(parameters)])


def test_a_failing_tool_logs_its_traceback_and_answers_the_model_briefly(caplog):
    def broken(account: str) -> dict:
        raise ValueError(f"no account {account}")

    wrapped = errors_as_results(broken)
    with caplog.at_level("ERROR"):
        assert wrapped("1200") == {"error": "ValueError: no account 1200"}
    assert "Traceback" in caplog.text and 'raise ValueError(f"no account {account}")' in caplog.text


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


def count(items: list[int]) -> int:
    """How many items.

    Args:
        items: the items.
    """
    return len(items)


def total(items: list[int]) -> int:
    """Sum of the items.

    Args:
        items: the items.
    """
    return sum(items)


def test_built_tools_are_built_once_per_process():
    """Each agent start asks for its tools; the schema and validator are generated once."""
    registry = ToolRegistry({"hr.count": count, "finance.total": total})
    first = registry.build(["hr.count", "total"])
    again = registry.build(["count", "finance.total"])
    assert [a is b for a, b in zip(first, again)] == [True, True]
    assert registry.build(["hr.count"], timeout=5.0)[0] is not first[0]  # another timeout, another tool
    inline = InlineTool.model_validate({"type": "function", "function": {"name": "count", "description": "n"}})
    [described] = registry.build([inline])
    assert described is not first[0] and described.description == "n"
    registry.clear_cache()
    assert registry.build(["hr.count"])[0] is not first[0]


def test_one_tool_serves_many_concurrent_agent_runs():
    """A shared Tool holds no per-run state: concurrent runs each get their own answers."""
    import asyncio

    from pydantic_ai import Agent
    from pydantic_ai.models.test import TestModel

    def double(n: int) -> int:
        """Twice n.

        Args:
            n: a number.
        """
        return 2 * n

    registry = ToolRegistry({"math.double": double})

    async def run(i: int):
        agent = Agent(TestModel(call_tools=["double"]), tools=registry.build(["math.double"]))
        return await agent.run(f"double {i}")

    async def scenario():
        return await asyncio.gather(*(run(i) for i in range(20)))

    results = asyncio.run(scenario())
    assert all(r.output for r in results)
    assert len({id(t) for _ in range(3) for t in registry.build(["math.double"])}) == 1


def test_a_model_sees_the_inline_parameters_and_is_asked_again_outside_them():
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart, ToolReturnPart
    from pydantic_ai.models.function import FunctionModel

    seen: list[dict] = []

    def model(messages, info):
        seen.append(info.function_tools[0].parameters_json_schema)
        answers = {1: ToolCallPart("get_ledger_balance", {"account": "Cash"}),  # outside the parameters
                   2: ToolCallPart("get_ledger_balance", {"account": "1000"})}
        return ModelResponse(parts=[answers.get(len(seen), TextPart("done"))])

    agent = Agent(FunctionModel(model), tools=default_registry().build([_inline(LEDGER_PARAMETERS)]))
    result = agent.run_sync("Balance of cash?")
    parts = [p for m in result.all_messages() for p in m.parts]
    assert seen[0] == LEDGER_PARAMETERS
    retried, returned = [p for p in parts if isinstance(p, ToolReturnPart)]
    assert retried.outcome == "retried" and "account: 'Cash' does not match" in str(retried.content)
    assert returned.outcome == "success" and returned.content["account"] == "1000" and result.output == "done"
