"""The explicit allow-list of tools a model may call.

A spec lists tools by name; only names found here are ever offered to a model or executed. The
JSON Schema of each tool comes from its type hints and docstring (pydantic-ai builds it), and
pydantic-ai validates the model's arguments against it before the function runs; invalid
arguments and tool errors go back to the model as a retry prompt, never executed blindly.
An inline OpenAI-format tool in a spec binds to a registered tool by name; it may give a
description and ``parameters``. Given, the parameters are the JSON Schema the model is shown, and the
model's arguments must satisfy them as well as the function's signature (a mismatch goes back to the
model as a retry prompt); parameters that do not describe the function (a name it does not take, one
it needs left out, not an object schema) are refused.

A built ``Tool`` holds no per-run state (pydantic-ai keeps retries and calls in the run's context),
so each (tool, description, timeout) is built once per process: building one generates its JSON
Schema and validator, milliseconds of CPU that every agent start in the triggerer would repeat.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from collections.abc import Callable, Iterable, Mapping
import threading
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from pydantic_ai import Tool
from pydantic_ai.tools import ToolDefinition

from erp_agents._registration import registered
from erp_agents.exceptions import UnknownToolError
from erp_agents.spec.models import InlineTool

ENTRY_POINT_GROUP = "erp_agents.tools"
BUILTIN_TOOL_MODULES = ("include.erp.tools",)
DEFAULT_TOOL_TIMEOUT_S = 30.0
log = logging.getLogger(__name__)


def errors_as_results(function: Callable[..., Any]) -> Callable[..., Any]:
    """A tool that raises answers the model with a short error instead of ending the agent's run;
    the log gets the whole traceback."""

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except Exception as exc:
            log.exception("Tool %s failed", function.__name__)
            return {"error": f"{type(exc).__name__}: {exc}"}

    return call


def inline_parameters_problem(tool: InlineTool, function: Callable[..., Any] | None = None) -> str | None:
    """Why an inline tool's ``parameters`` cannot describe the registered ``function``, or None."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    schema, name = tool.function.parameters, tool.function.name
    if not schema:
        return None
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return f"tool {name!r}: parameters is not a valid JSON Schema: {exc.message}"
    if schema.get("type") != "object":
        return f"tool {name!r}: parameters must be a JSON Schema of type object (the tool's keyword arguments)"
    if function is None:
        return None
    signature = inspect.signature(function)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    accepted = {n for n, p in signature.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    needed = {n for n in accepted if signature.parameters[n].default is inspect.Parameter.empty}
    named = set(schema.get("properties") or {})
    unknown = [] if takes_any else sorted(named - accepted)
    if unknown:
        return f"tool {name!r}: parameters names {', '.join(unknown)}, which the registered function does not take"
    if missing := sorted(needed - named):
        return f"tool {name!r}: parameters leaves out {', '.join(missing)}, which the registered function needs"
    return None


def checked_against(schema: dict[str, Any], function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` that first checks its keyword arguments against the spec's JSON Schema; arguments
    that do not satisfy it go back to the model as a retry prompt, never to the function."""
    from jsonschema import Draft202012Validator
    from pydantic_ai import ModelRetry

    validator = Draft202012Validator(schema)

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        error = next(iter(sorted(validator.iter_errors(kwargs), key=lambda e: list(e.path))), None)
        if error is not None:
            where = ".".join(str(part) for part in error.path) or "arguments"
            raise ModelRetry(f"{where}: {error.message} (the tool's parameters)")
        return function(*args, **kwargs)

    return call


def _shown_schema(schema: dict[str, Any]) -> Any:
    """A ``prepare`` hook that shows the model the spec's parameters instead of the derived schema."""

    async def prepare(ctx: Any, tool_def: ToolDefinition) -> ToolDefinition:
        return replace(tool_def, parameters_json_schema=schema)

    return prepare


@dataclass(frozen=True)
class ToolRegistry:
    """Qualified name (``finance.get_ledger_balance``) -> Python callable."""

    tools: Mapping[str, Callable[..., Any]]
    _built: dict[tuple[str, str | None, float, str | None], Tool[Any]] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False, hash=False)

    def qualified_name(self, name: str) -> str:
        """Accept ``module.tool`` or, when unambiguous, the bare ``tool`` name."""
        if name in self.tools:
            return name
        matches = [q for q in self.tools if q.rsplit(".", 1)[-1] == name]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise UnknownToolError(f"tool name {name!r} is ambiguous: {', '.join(sorted(matches))}")
        raise UnknownToolError(f"unknown tool {name!r}; registered tools: {', '.join(sorted(self.tools)) or 'none'}")

    def build(self, names: Iterable[str | InlineTool], *, timeout: float = DEFAULT_TOOL_TIMEOUT_S) -> list[Tool[Any]]:
        """pydantic-ai tools for a spec's tool list; inline OpenAI-format tools bind by function name."""
        built: list[Tool[Any]] = []
        for entry in names:
            description, schema = None, None
            if isinstance(entry, InlineTool):
                name, description = entry.function.name, entry.function.description or None
                qualified = self.qualified_name(name)
                if problem := inline_parameters_problem(entry, self.tools[qualified]):
                    raise UnknownToolError(problem)
                schema = entry.function.parameters or None
            else:
                qualified = self.qualified_name(entry)
            built.append(self._tool(qualified, description, timeout, schema))
        return built

    def _tool(self, qualified: str, description: str | None, timeout: float,
              schema: dict[str, Any] | None = None) -> Tool[Any]:
        key = (qualified, description, timeout, json.dumps(schema, sort_keys=True) if schema else None)
        tool = self._built.get(key)
        if tool is None:
            with self._lock:  # tools are built on the loop and in worker threads alike
                tool = self._built.get(key)
                if tool is None:
                    function = errors_as_results(self.tools[qualified])
                    tool = self._built[key] = Tool(
                        checked_against(schema, function) if schema else function,
                        name=qualified.rsplit(".", 1)[-1],
                        description=description,
                        max_retries=2,
                        timeout=timeout,
                        prepare=_shown_schema(schema) if schema else None,
                    )
        return tool

    def clear_cache(self) -> None:
        """Forget the built tools (a bench's per-agent baseline; a reloaded tool module)."""
        with self._lock:
            self._built.clear()


@lru_cache(maxsize=1)
def default_registry() -> ToolRegistry:
    """The project's ERP tools plus every tool registered under the ``erp_agents.tools`` entry point."""
    return ToolRegistry(registered(BUILTIN_TOOL_MODULES, "ERP_TOOLS", ENTRY_POINT_GROUP))
