"""OpenAI Chat Completions dialect: ``POST /v1/chat/completions``.

Non-streaming only. Accepts ``max_tokens`` or ``max_completion_tokens``,
messages with roles system/developer/user/assistant/tool (content as a string
or a list of parts), function tools, ``tool_choice`` and ``response_format``.
Automatic prompt caching (see ``caching``): a cache hit adds
``usage.prompt_tokens_details = {cached_tokens, audio_tokens: 0}``; without a
hit the usage has no ``prompt_tokens_details``.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

from fastapi import APIRouter, Request
from starlette.responses import Response

from include.llm_simulator.answers import Answer
from include.llm_simulator.caching import NO_CACHE, CachePlan, CacheUsage, automatic_plan
from include.llm_simulator.conversation import (
    Conversation, Message, ResponseFormat, ToolCall, ToolChoice, ToolResult, ToolSpec, resolve_tool_names,
)
from include.llm_simulator.errors import Api
from include.llm_simulator.handling import InvalidRequest, handle_model_request
from include.llm_simulator.ratelimit import RateSnapshot, openai_headers
from include.llm_simulator.tokens import json_text


def content_text(content: Any) -> str:
    """Text of a message content: a string or a list of content parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif isinstance(part, dict) and isinstance(part.get("refusal"), str):
                texts.append(part["refusal"])
        return "\n".join(texts)
    raise InvalidRequest("message content must be a string, a list of content parts or null")


def max_tokens(body: dict[str, Any]) -> int | None:
    """``max_completion_tokens`` (preferred) or ``max_tokens``, validated."""
    value = body.get("max_completion_tokens")
    if value is None:
        value = body.get("max_tokens")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest("max_tokens must be a positive integer")
    return value


def _tool_calls(raw: Any) -> tuple[ToolCall, ...]:
    calls = []
    for item in raw or ():
        function = item.get("function") if isinstance(item, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest("assistant tool_calls must have function.name")
        arguments = function.get("arguments")
        calls.append(ToolCall(str(item.get("id", "")), function["name"],
                              arguments if isinstance(arguments, str) else json_text(arguments or {})))
    return tuple(calls)


def _messages(raw: Any) -> tuple[list[str], list[Message]]:
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest("messages must be a non-empty list")
    system: list[str] = []
    messages: list[Message] = []
    for item in raw:
        if not isinstance(item, dict):
            raise InvalidRequest("each message must be an object")
        role = item.get("role")
        text = content_text(item.get("content"))
        if role in ("system", "developer"):
            system.append(text)
        elif role == "user":
            messages.append(Message("user", text))
        elif role == "assistant":
            messages.append(Message("assistant", text, _tool_calls(item.get("tool_calls"))))
        elif role in ("tool", "function"):
            result = ToolResult(str(item.get("tool_call_id", "")), str(item.get("name") or ""), text)
            messages.append(Message("tool", tool_results=(result,)))
        else:
            raise InvalidRequest(f"unsupported message role: {role!r}")
    return system, resolve_tool_names(messages)


def _tools(raw: Any) -> tuple[ToolSpec, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InvalidRequest("tools must be a list")
    specs = []
    for tool in raw:
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest("each tool must be {type: function, function: {name, parameters}}")
        specs.append(ToolSpec(function["name"], str(function.get("description") or ""),
                              function.get("parameters") or {}))
    return tuple(specs)


def _tool_choice(raw: Any) -> ToolChoice:
    if raw in (None, "auto"):
        return ToolChoice()
    if raw in ("none", "required"):
        return ToolChoice(raw)
    if isinstance(raw, dict) and isinstance(raw.get("function"), dict):
        return ToolChoice("tool", raw["function"].get("name"))
    raise InvalidRequest("unsupported tool_choice")


def _response_format(raw: Any) -> ResponseFormat | None:
    if not isinstance(raw, dict) or raw.get("type") in (None, "text"):
        return None
    if raw["type"] == "json_object":
        return ResponseFormat("json_object")
    if raw["type"] == "json_schema":
        spec = raw.get("json_schema") or {}
        return ResponseFormat("json_schema", spec.get("schema") or {})
    raise InvalidRequest(f"unsupported response_format type: {raw['type']!r}")


class OpenAIDialect:
    """Parsing and rendering for the Chat Completions API."""

    api: Api = "openai"
    id_prefix = "call"
    request_id_header = "x-request-id"

    def api_key(self, headers: Mapping[str, str]) -> str | None:
        value = headers.get("authorization", "")
        scheme, _, token = value.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None

    def parse(self, body: dict[str, Any]) -> Conversation:
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise InvalidRequest("model is required")
        if body.get("stream"):
            raise InvalidRequest("streaming not supported by the simulator")
        system, messages = _messages(body.get("messages"))
        tools = body.get("tools")
        return Conversation(
            model=body["model"], system_parts=tuple(system), messages=tuple(messages), tools=_tools(tools),
            tools_json=json_text(tools) if tools else "", max_tokens=max_tokens(body),
            tool_choice=_tool_choice(body.get("tool_choice")),
            response_format=_response_format(body.get("response_format")),
        )

    def cache_plan(self, body: dict[str, Any], conversation: Conversation) -> CachePlan:
        return automatic_plan(conversation)

    def render(self, conversation: Conversation, answer: Answer, request_id: str,
               input_tokens: int, cache: CacheUsage = NO_CACHE) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": answer.text, "refusal": None}
        if answer.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in answer.tool_calls
            ]
            finish = "tool_calls"
        else:
            finish = "length" if answer.truncated else "stop"
        usage: dict[str, Any] = {
            "prompt_tokens": input_tokens,
            "completion_tokens": answer.output_tokens,
            "total_tokens": input_tokens + answer.output_tokens,
        }
        if cache.read:
            usage["prompt_tokens_details"] = {"cached_tokens": cache.read, "audio_tokens": 0}
        return {
            "id": f"chatcmpl-{request_id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": conversation.model,
            "system_fingerprint": "llm-simulator",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": usage,
        }

    def ratelimit_headers(self, snapshot: RateSnapshot) -> dict[str, str]:
        return openai_headers(snapshot)


OPENAI = OpenAIDialect()
router = APIRouter()


@router.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Response:
    """Chat completion with simulated latency, limits and faults."""
    return await handle_model_request(request, OPENAI)
