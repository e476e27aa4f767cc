"""The explicit allow-list of tools a model may call.

A spec lists tools by name; only names found here are ever offered to a model or executed. The
JSON Schema of each tool comes from its type hints and docstring (pydantic-ai builds it), and
pydantic-ai validates the model's arguments against it before the function runs; invalid
arguments and tool errors go back to the model as a retry prompt, never executed blindly.
An inline OpenAI-format tool in a spec binds to a registered tool by name; it may give a
description, but not ``parameters``: the registered function's signature is the schema, and
parameters that would be ignored are refused instead.

A built ``Tool`` holds no per-run state (pydantic-ai keeps retries and calls in the run's context),
so each (tool, description, timeout) is built once per process: building one generates its JSON
Schema and validator, milliseconds of CPU that every agent start in the triggerer would repeat.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pydantic_ai import Tool

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


def inline_parameters_problem(tool: InlineTool) -> str | None:
    """Why an inline tool cannot be used as written, or None."""
    if tool.function.parameters:
        return (f"tool {tool.function.name!r}: inline parameters are not used (the registered function's "
                "signature is the schema); remove them")
    return None


@dataclass(frozen=True)
class ToolRegistry:
    """Qualified name (``finance.get_ledger_balance``) -> Python callable."""

    tools: Mapping[str, Callable[..., Any]]
    _built: dict[tuple[str, str | None, float], Tool[Any]] = field(
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
            description = None
            if isinstance(entry, InlineTool):
                if problem := inline_parameters_problem(entry):
                    raise UnknownToolError(problem)
                name, description = entry.function.name, entry.function.description or None
            else:
                name = entry
            built.append(self._tool(self.qualified_name(name), description, timeout))
        return built

    def _tool(self, qualified: str, description: str | None, timeout: float) -> Tool[Any]:
        key = (qualified, description, timeout)
        tool = self._built.get(key)
        if tool is None:
            with self._lock:  # tools are built on the loop and in worker threads alike
                tool = self._built.get(key)
                if tool is None:
                    tool = self._built[key] = Tool(
                        errors_as_results(self.tools[qualified]),
                        name=qualified.rsplit(".", 1)[-1],
                        description=description,
                        max_retries=2,
                        timeout=timeout,
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
