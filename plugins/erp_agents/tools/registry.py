"""The explicit allow-list of tools a model may call.

A spec lists tools by name; only names found here are ever offered to a model or executed. The
JSON Schema of each tool comes from its type hints and docstring (pydantic-ai builds it), and
pydantic-ai validates the model's arguments against it before the function runs; invalid
arguments and tool errors go back to the model as a retry prompt, never executed blindly.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic_ai import Tool

from erp_agents._registration import registered

ENTRY_POINT_GROUP = "erp_agents.tools"
BUILTIN_TOOL_MODULES = ("include.erp.tools",)
DEFAULT_TOOL_TIMEOUT_S = 30.0
log = logging.getLogger(__name__)


def errors_as_results(function: Callable[..., Any]) -> Callable[..., Any]:
    """A tool that raises answers the model with the error instead of ending the agent's run."""

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except Exception as exc:
            log.warning("Tool %s failed: %s: %s", function.__name__, type(exc).__name__, exc)
            return {"error": f"{type(exc).__name__}: {exc}"}

    return call


class UnknownToolError(LookupError):
    """A spec names a tool that is not registered."""


@dataclass(frozen=True)
class ToolRegistry:
    """Qualified name (``finance.get_ledger_balance``) -> Python callable."""

    tools: Mapping[str, Callable[..., Any]]

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

    def build(self, names: Iterable[str | Mapping[str, Any]], *, timeout: float = DEFAULT_TOOL_TIMEOUT_S) -> list[Tool[Any]]:
        """pydantic-ai tools for a spec's tool list; inline OpenAI-format tools bind by function name."""
        built: list[Tool[Any]] = []
        for entry in names:
            description = None
            if isinstance(entry, Mapping):
                function = entry["function"]
                name, description = function["name"], function.get("description") or None
            else:
                name = entry
            qualified = self.qualified_name(name)
            built.append(
                Tool(
                    errors_as_results(self.tools[qualified]),
                    name=qualified.rsplit(".", 1)[-1],
                    description=description,
                    max_retries=2,
                    timeout=timeout,
                )
            )
        return built


@lru_cache(maxsize=1)
def default_registry() -> ToolRegistry:
    """The project's ERP tools plus every tool registered under the ``erp_agents.tools`` entry point."""
    return ToolRegistry(registered(BUILTIN_TOOL_MODULES, "ERP_TOOLS", ENTRY_POINT_GROUP))
