"""Provider-neutral view of a chat request.

All API dialects (OpenAI chat completions and responses, Anthropic messages) are parsed
into these frozen types so that token counting and answer generation are
written once and behave identically for both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["user", "assistant", "tool"]


@dataclass(frozen=True)
class ToolCall:
    """A tool invocation made by the assistant; ``arguments`` is JSON text."""

    id: str
    name: str
    arguments: str

    def arguments_object(self) -> Any:
        """Parsed arguments, or the raw text when it is not valid JSON."""
        try:
            return json.loads(self.arguments)
        except (TypeError, ValueError):
            return self.arguments


@dataclass(frozen=True)
class ToolResult:
    """The output of a tool, sent back by the client."""

    call_id: str
    name: str
    content: str


@dataclass(frozen=True)
class Message:
    """One non-system message of the conversation."""

    role: Role
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_results: tuple[ToolResult, ...] = ()


@dataclass(frozen=True)
class ToolSpec:
    """A tool offered by the client, with its JSON Schema for arguments."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolChoice:
    """Normalised tool choice: ``auto``, ``none``, ``required`` or a named ``tool``."""

    mode: Literal["auto", "none", "required", "tool"] = "auto"
    name: str | None = None


@dataclass(frozen=True)
class ResponseFormat:
    """Requested JSON output: ``json_schema`` (with ``schema``) or ``json_object``."""

    kind: Literal["json_schema", "json_object"]
    schema: dict[str, Any] | None = None


@dataclass(frozen=True)
class Conversation:
    """Everything the simulator needs from a request to answer it."""

    model: str
    system_parts: tuple[str, ...]
    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...] = ()
    tools_json: str = ""
    max_tokens: int | None = None
    tool_choice: ToolChoice = ToolChoice()
    response_format: ResponseFormat | None = None

    @property
    def system(self) -> str:
        """All system text joined with blank lines."""
        return "\n\n".join(part for part in self.system_parts if part)


def resolve_tool_names(messages: list[Message]) -> list[Message]:
    """Fill in tool result names from the assistant calls they answer.

    Tool results only carry the id of the call; the name is needed for the
    "already answered" check and the final summary.
    """
    names: dict[str, str] = {}
    resolved: list[Message] = []
    for message in messages:
        for call in message.tool_calls:
            names[call.id] = call.name
        if message.tool_results:
            results = tuple(
                ToolResult(r.call_id, names.get(r.call_id, r.name or "unknown"), r.content)
                for r in message.tool_results
            )
            message = Message(message.role, message.text, message.tool_calls, results)
        resolved.append(message)
    return resolved
