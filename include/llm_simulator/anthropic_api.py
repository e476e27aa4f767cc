"""Anthropic Messages dialect: ``POST /v1/messages``.

Non-streaming only. ``max_tokens`` is required; the system prompt may be a
string or a list of text blocks; content blocks text/tool_use/tool_result are
understood (others such as images or thinking are ignored). Structured output
via ``output_format``/``output_config.format`` of type ``json_schema`` is
answered with JSON built from the schema.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from fastapi import APIRouter, Request
from starlette.responses import Response

from include.llm_simulator.answers import Answer
from include.llm_simulator.conversation import (
    Conversation, Message, ResponseFormat, ToolCall, ToolChoice, ToolResult, ToolSpec, resolve_tool_names,
)
from include.llm_simulator.errors import Api
from include.llm_simulator.handling import InvalidRequest, handle_model_request
from include.llm_simulator.ratelimit import RateSnapshot, anthropic_headers
from include.llm_simulator.tokens import json_text


def blocks_text(content: Any) -> str:
    """Text of a string or of the text blocks in a list of blocks."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(b["text"] for b in content if isinstance(b, dict) and isinstance(b.get("text"), str))
    raise InvalidRequest("content must be a string or a list of content blocks")


def _message(item: Any) -> Message:
    if not isinstance(item, dict) or item.get("role") not in ("user", "assistant"):
        raise InvalidRequest("each message must have role 'user' or 'assistant'")
    content = item.get("content")
    if isinstance(content, str) or content is None:
        return Message(item["role"], content or "")
    if not isinstance(content, list):
        raise InvalidRequest("message content must be a string or a list of blocks")
    texts: list[str] = []
    calls: list[ToolCall] = []
    results: list[ToolResult] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            calls.append(ToolCall(str(block.get("id", "")), str(block.get("name", "")),
                                  json_text(block.get("input") or {})))
        elif kind == "tool_result":
            results.append(ToolResult(str(block.get("tool_use_id", "")), "", blocks_text(block.get("content"))))
    return Message(item["role"], "\n".join(texts), tuple(calls), tuple(results))


def _tools(raw: Any) -> tuple[ToolSpec, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InvalidRequest("tools must be a list")
    specs = []
    for tool in raw:
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise InvalidRequest("each tool must have a name")
        if "input_schema" in tool:
            specs.append(ToolSpec(tool["name"], str(tool.get("description") or ""), tool["input_schema"] or {}))
    return tuple(specs)


def _tool_choice(raw: Any) -> ToolChoice:
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind in (None, "auto"):
        return ToolChoice()
    if kind == "any":
        return ToolChoice("required")
    if kind == "none":
        return ToolChoice("none")
    if kind == "tool":
        return ToolChoice("tool", raw.get("name"))
    raise InvalidRequest("unsupported tool_choice")


def _output_format(body: dict[str, Any]) -> ResponseFormat | None:
    raw = body.get("output_format") or (body.get("output_config") or {}).get("format")
    if isinstance(raw, dict) and raw.get("type") == "json_schema":
        return ResponseFormat("json_schema", raw.get("schema") or {})
    return None


class AnthropicDialect:
    """Parsing and rendering for the Messages API."""

    api: Api = "anthropic"
    id_prefix = "toolu"
    request_id_header = "request-id"

    def api_key(self, headers: Mapping[str, str]) -> str | None:
        if headers.get("x-api-key"):
            return headers["x-api-key"]
        scheme, _, token = headers.get("authorization", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None

    def parse(self, body: dict[str, Any]) -> Conversation:
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise InvalidRequest("model: Field required")
        limit = body.get("max_tokens")
        if limit is None:
            raise InvalidRequest("max_tokens: Field required")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidRequest("max_tokens: must be a positive integer")
        if body.get("stream"):
            raise InvalidRequest("streaming not supported by the simulator")
        raw_messages = body.get("messages")
        if not isinstance(raw_messages, list) or not raw_messages:
            raise InvalidRequest("messages: must be a non-empty list")
        system = blocks_text(body.get("system"))
        tools = body.get("tools")
        return Conversation(
            model=body["model"], system_parts=(system,) if system else (),
            messages=tuple(resolve_tool_names([_message(m) for m in raw_messages])),
            tools=_tools(tools), tools_json=json_text(tools) if tools else "", max_tokens=limit,
            tool_choice=_tool_choice(body.get("tool_choice")), response_format=_output_format(body),
        )

    def render(self, conversation: Conversation, answer: Answer, request_id: str,
               input_tokens: int) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if answer.text is not None:
            content.append({"type": "text", "text": answer.text})
        for call in answer.tool_calls:
            content.append({"type": "tool_use", "id": call.id, "name": call.name, "input": json.loads(call.arguments)})
        if answer.tool_calls:
            stop = "tool_use"
        else:
            stop = "max_tokens" if answer.truncated else "end_turn"
        return {
            "id": f"msg_{request_id}",
            "type": "message",
            "role": "assistant",
            "model": conversation.model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": answer.output_tokens},
        }

    def ratelimit_headers(self, snapshot: RateSnapshot) -> dict[str, str]:
        return anthropic_headers(snapshot)


ANTHROPIC = AnthropicDialect()
router = APIRouter()


@router.post("/v1/messages")
async def messages(request: Request) -> Response:
    """Message creation with simulated latency, limits and faults."""
    return await handle_model_request(request, ANTHROPIC)
