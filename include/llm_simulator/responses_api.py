"""OpenAI Responses dialect: ``POST /v1/responses``.

Non-streaming and stateless: ``stream``, ``background``, ``previous_response_id``
and ``conversation`` give a 400 (nothing is stored server-side). Understood:

* ``input``: a string (one user message) or a list of items: messages
  (``role`` user/system/developer/assistant, ``content`` a string or a list of
  parts such as ``input_text``/``output_text``/``refusal``), ``function_call``
  items (``call_id``, ``name``, ``arguments``) and ``function_call_output``
  items (``call_id``, ``output`` as a string or a list of ``input_text``
  parts). Other item types (e.g. ``reasoning``, ``item_reference``) are
  ignored. An assistant message and the ``function_call`` items right after it
  form one assistant turn, as one Chat Completions assistant message would.
* ``instructions``: system text, placed before any system/developer messages.
* ``tools``: ``{type: function, name, description, parameters, strict}``;
  other (hosted) tool types are counted but never called.
* ``tool_choice``: ``auto``/``none``/``required``, ``{type: function, name}``
  or ``{type: allowed_tools, mode, tools}``.
* ``text.format``: ``json_schema`` (``schema``) or ``json_object``.
* ``max_output_tokens``.

The response is a ``response`` object whose ``output`` holds one ``message``
item (``output_text`` content) or ``function_call`` items; a truncated text
answer has status ``incomplete`` with ``incomplete_details.reason`` =
``max_output_tokens``. Request settings are echoed as the real API does.
Automatic prompt caching (see ``caching``) reports hits in
``usage.input_tokens_details.cached_tokens`` (``cache_write_tokens`` stays 0).
Errors use the OpenAI error format (the log's ``api`` is ``openai``; the
``path`` tells the two OpenAI dialects apart).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
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
from include.llm_simulator.openai_api import OPENAI, content_text
from include.llm_simulator.ratelimit import RateSnapshot
from include.llm_simulator.tokens import json_text

_UNSUPPORTED_STATE = ("previous_response_id", "conversation")


@dataclass(frozen=True)
class ResponsesConversation(Conversation):
    """A parsed Responses request plus the settings the response echoes back."""

    echo: Mapping[str, Any] = field(default_factory=dict)


def _output_text(raw: Any) -> str:
    """A ``function_call_output.output``: a string or a list of content parts."""
    if raw is None or isinstance(raw, (str, list)):
        return content_text(raw)
    raise InvalidRequest("function_call_output.output must be a string or a list of content parts")


def _input(raw: Any) -> tuple[list[str], list[Message]]:
    if isinstance(raw, str):
        return [], [Message("user", raw)]
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest("input must be a string or a non-empty list of items")
    system: list[str] = []
    messages: list[Message] = []

    def open_assistant_turn() -> Message:
        last = messages[-1] if messages else None
        if last is not None and last.role == "assistant" and not last.tool_results:
            return messages.pop()
        return Message("assistant")

    for item in raw:
        if not isinstance(item, dict):
            raise InvalidRequest("each input item must be an object")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            text = content_text(item.get("content"))
            if role in ("system", "developer"):
                system.append(text)
            elif role == "user":
                messages.append(Message("user", text))
            elif role == "assistant":
                turn = open_assistant_turn()
                joined = "\n".join(part for part in (turn.text, text) if part)
                messages.append(Message("assistant", joined, turn.tool_calls))
            else:
                raise InvalidRequest(f"unsupported message role: {role!r}")
        elif kind == "function_call":
            if not isinstance(item.get("name"), str) or not isinstance(item.get("call_id"), str):
                raise InvalidRequest("function_call items must have call_id and name")
            arguments = item.get("arguments")
            call = ToolCall(item["call_id"], item["name"],
                            arguments if isinstance(arguments, str) else json_text(arguments or {}))
            turn = open_assistant_turn()
            messages.append(Message("assistant", turn.text, turn.tool_calls + (call,)))
        elif kind == "function_call_output":
            if not isinstance(item.get("call_id"), str):
                raise InvalidRequest("function_call_output items must have call_id")
            result = ToolResult(item["call_id"], "", _output_text(item.get("output")))
            messages.append(Message("tool", tool_results=(result,)))
        # Anything else (reasoning, item_reference, hosted tool calls) carries no text the simulator uses.
    return system, resolve_tool_names(messages)


def _tools(raw: Any) -> tuple[ToolSpec, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InvalidRequest("tools must be a list")
    specs = []
    for tool in raw:
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            raise InvalidRequest("each tool must be an object with a type")
        if tool["type"] != "function":
            continue
        if not isinstance(tool.get("name"), str):
            raise InvalidRequest("function tools must be {type: function, name, parameters}")
        specs.append(ToolSpec(tool["name"], str(tool.get("description") or ""), tool.get("parameters") or {}))
    return tuple(specs)


def _tool_choice(raw: Any, tools: tuple[ToolSpec, ...]) -> tuple[ToolChoice, tuple[ToolSpec, ...]]:
    """The choice, and the tools it leaves callable (``allowed_tools`` narrows them)."""
    if raw in (None, "auto"):
        return ToolChoice(), tools
    if raw in ("none", "required"):
        return ToolChoice(raw), tools
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind == "function" and isinstance(raw.get("name"), str):
        return ToolChoice("tool", raw["name"]), tools
    if kind == "allowed_tools" and raw.get("mode") in ("auto", "required") and isinstance(raw.get("tools"), list):
        names = {t.get("name") for t in raw["tools"] if isinstance(t, dict) and t.get("type") == "function"}
        return ToolChoice(raw["mode"]), tuple(t for t in tools if t.name in names)
    raise InvalidRequest("unsupported tool_choice")


def _text_format(raw: Any) -> ResponseFormat | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidRequest("text must be an object")
    fmt = raw.get("format")
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt["type"] == "json_object":
        return ResponseFormat("json_object")
    if fmt["type"] == "json_schema":
        return ResponseFormat("json_schema", fmt.get("schema") or {})
    raise InvalidRequest(f"unsupported text.format type: {fmt['type']!r}")


def _max_output_tokens(body: dict[str, Any]) -> int | None:
    value = body.get("max_output_tokens")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest("max_output_tokens must be a positive integer")
    return value


def _echo(body: dict[str, Any]) -> dict[str, Any]:
    """Request settings a real response object repeats, with the API's defaults."""
    return {
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": body.get("metadata") or {},
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "user": body.get("user"),
    }


class ResponsesDialect:
    """Parsing and rendering for the Responses API."""

    api: Api = "openai"
    id_prefix = "call"
    request_id_header = "x-request-id"

    def api_key(self, headers: Mapping[str, str]) -> str | None:
        return OPENAI.api_key(headers)

    def parse(self, body: dict[str, Any]) -> Conversation:
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise InvalidRequest("model is required")
        if body.get("stream"):
            raise InvalidRequest("streaming not supported by the simulator")
        if body.get("background"):
            raise InvalidRequest("background responses not supported by the simulator")
        for key in _UNSUPPORTED_STATE:
            if body.get(key):
                raise InvalidRequest(f"{key} not supported by the simulator (it stores no responses)")
        instructions = body.get("instructions")
        if instructions is not None and not isinstance(instructions, str):
            raise InvalidRequest("instructions must be a string")
        system, messages = _input(body.get("input"))
        raw_tools = body.get("tools")
        tools = _tools(raw_tools)
        choice, callable_tools = _tool_choice(body.get("tool_choice"), tools)
        return ResponsesConversation(
            model=body["model"], system_parts=tuple(([instructions] if instructions else []) + system),
            messages=tuple(messages), tools=callable_tools, tools_json=json_text(raw_tools) if raw_tools else "",
            max_tokens=_max_output_tokens(body), tool_choice=choice, response_format=_text_format(body.get("text")),
            echo=_echo(body),
        )

    def cache_plan(self, body: dict[str, Any], conversation: Conversation) -> CachePlan:
        return automatic_plan(conversation)

    def render(self, conversation: Conversation, answer: Answer, request_id: str,
               input_tokens: int, cache: CacheUsage = NO_CACHE) -> dict[str, Any]:
        status = "incomplete" if answer.truncated else "completed"
        output: list[dict[str, Any]] = [
            {"id": f"fc_{request_id}_{index}", "type": "function_call", "status": "completed",
             "call_id": call.id, "name": call.name, "arguments": call.arguments}
            for index, call in enumerate(answer.tool_calls)
        ]
        if answer.text is not None:
            output.append({
                "id": f"msg_{request_id}", "type": "message", "role": "assistant", "status": status,
                "content": [{"type": "output_text", "text": answer.text, "annotations": [], "logprobs": []}],
            })
        now = int(time.time())
        echo = conversation.echo if isinstance(conversation, ResponsesConversation) else {}
        return {
            "id": f"resp_{request_id}",
            "object": "response",
            "created_at": now,
            "completed_at": None if answer.truncated else now,
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if answer.truncated else None,
            "model": conversation.model,
            "output": output,
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None},
            **echo,
            "usage": {
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": cache.read, "cache_write_tokens": 0},
                "output_tokens": answer.output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input_tokens + answer.output_tokens,
            },
        }

    def ratelimit_headers(self, snapshot: RateSnapshot) -> dict[str, str]:
        return OPENAI.ratelimit_headers(snapshot)


RESPONSES = ResponsesDialect()
router = APIRouter()


@router.post("/v1/responses")
async def responses(request: Request) -> Response:
    """Response creation with simulated latency, limits and faults."""
    return await handle_model_request(request, RESPONSES)
