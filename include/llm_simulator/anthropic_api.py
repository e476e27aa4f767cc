"""Anthropic Messages dialect: ``POST /v1/messages``.

Non-streaming only. ``max_tokens`` is required; the system prompt may be a
string or a list of text blocks; content blocks text/tool_use/tool_result are
understood (others such as images or thinking are ignored). Structured output
via ``output_format``/``output_config.format`` of type ``json_schema`` is
answered with JSON built from the schema.

Prompt caching is explicit, as in the real API (see ``caching``): only a
request with ``cache_control`` on a tool, a system block or a message content
block, or a top-level ``cache_control``, reads or writes the cache, and only
such a request gets ``cache_creation_input_tokens``,
``cache_read_input_tokens`` and ``cache_creation`` in its usage; its
``input_tokens`` then counts only the tokens neither read nor written.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from fastapi import APIRouter, Request
from starlette.responses import Response

from include.llm_simulator.answers import Answer
from include.llm_simulator.caching import (
    DEFAULT_TTL, MAX_BREAKPOINTS, NO_CACHE, TTLS, CachePlan, CacheUnit, CacheUsage, unit_key,
)
from include.llm_simulator.conversation import (
    Conversation, Message, ResponseFormat, ToolCall, ToolChoice, ToolResult, ToolSpec, resolve_tool_names,
)
from include.llm_simulator.errors import Api
from include.llm_simulator.handling import InvalidRequest, handle_model_request
from include.llm_simulator.ratelimit import RateSnapshot, anthropic_headers
from include.llm_simulator.tokens import MESSAGE_OVERHEAD, count_tokens, json_text


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


def _ttl(block: Any) -> str | None:
    """TTL of a block's ``cache_control`` (None when it has none); 400 for one the API would refuse."""
    if not isinstance(block, dict) or block.get("cache_control") is None:
        return None
    control = block["cache_control"]
    if not isinstance(control, dict) or control.get("type") != "ephemeral":
        raise InvalidRequest("cache_control.type: Input should be 'ephemeral'")
    ttl = control.get("ttl", DEFAULT_TTL)
    if ttl not in TTLS:
        raise InvalidRequest("cache_control.ttl: Input should be '5m' or '1h'")
    return ttl


def _unit(block: Any, tokens: int) -> CacheUnit:
    content = {k: v for k, v in block.items() if k != "cache_control"} if isinstance(block, dict) else block
    return CacheUnit(unit_key(content), tokens, _ttl(block))


def _block_tokens(block: Any) -> int:
    """Tokens of one content block, as ``tokens.prompt_tokens`` counts it inside its message."""
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "text":
        return count_tokens(str(block.get("text", "")))
    if kind == "tool_use":
        return count_tokens(json_text(block.get("input") or {}))
    if kind == "tool_result":
        return count_tokens(blocks_text(block.get("content")))
    return 0


def _tool_units(tools: Any) -> list[CacheUnit]:
    """One unit per tool; brackets and commas of the JSON list go to the tools around them."""
    if not tools:
        return []
    last = len(tools) - 1
    return [_unit(tool, count_tokens(json_text(tool)) + 1 + (i == last)) for i, tool in enumerate(tools)]


def _system_units(system: Any) -> list[CacheUnit]:
    if not system:
        return []
    if isinstance(system, str):
        return [CacheUnit(unit_key({"system": system}), MESSAGE_OVERHEAD + count_tokens(system))]
    overhead = MESSAGE_OVERHEAD if blocks_text(system) else 0
    return [_unit(block, _block_tokens(block) + (overhead if i == 0 else 0)) for i, block in enumerate(system)]


def _message_units(message: dict[str, Any]) -> list[CacheUnit]:
    content = message.get("content")
    if not isinstance(content, list) or not content:
        text = content if isinstance(content, str) else ""
        return [CacheUnit(unit_key({"role": message["role"], "content": content}),
                          MESSAGE_OVERHEAD + count_tokens(text))]
    units = [_unit(block, _block_tokens(block)) for block in content]
    units[0] = CacheUnit(unit_key({"role": message["role"], "block": units[0].key}),
                         units[0].tokens + MESSAGE_OVERHEAD, units[0].breakpoint)
    return units


def cache_plan(body: dict[str, Any]) -> CachePlan | None:
    """Explicit-caching units of a (parsed, valid) request, or None when it marks no ``cache_control``."""
    units = _tool_units(body.get("tools")) + _system_units(body.get("system"))
    for message in body["messages"]:
        units += _message_units(message)
    automatic = _ttl({"cache_control": body["cache_control"]}) if body.get("cache_control") is not None else None
    marked = [unit.breakpoint for unit in units if unit.breakpoint is not None]
    if automatic is None and not marked:
        return None
    found = len(marked) + (automatic is not None)
    if found > MAX_BREAKPOINTS:
        raise InvalidRequest(f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
                             f"Found {found}.")
    if automatic is not None and units[-1].breakpoint is None:
        units[-1] = CacheUnit(units[-1].key, units[-1].tokens, automatic)
    ttls = [unit.breakpoint for unit in units if unit.breakpoint is not None]
    if "5m" in ttls and "1h" in ttls[ttls.index("5m"):]:
        raise InvalidRequest("a ttl='1h' cache_control block must not come after a ttl='5m' cache_control block")
    return CachePlan("explicit", tuple(units))


def _usage(input_tokens: int, output_tokens: int, cache: CacheUsage) -> dict[str, Any]:
    if not cache.explicit:
        return {"input_tokens": input_tokens, "output_tokens": output_tokens}
    return {
        "input_tokens": input_tokens - cache.read - cache.write,
        "cache_creation_input_tokens": cache.write,
        "cache_read_input_tokens": cache.read,
        "cache_creation": {"ephemeral_5m_input_tokens": cache.write_5m, "ephemeral_1h_input_tokens": cache.write_1h},
        "output_tokens": output_tokens,
    }


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

    def cache_plan(self, body: dict[str, Any], conversation: Conversation) -> CachePlan | None:
        return cache_plan(body)

    def render(self, conversation: Conversation, answer: Answer, request_id: str,
               input_tokens: int, cache: CacheUsage = NO_CACHE) -> dict[str, Any]:
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
            "usage": _usage(input_tokens, answer.output_tokens, cache),
        }

    def ratelimit_headers(self, snapshot: RateSnapshot) -> dict[str, str]:
        return anthropic_headers(snapshot)


ANTHROPIC = AnthropicDialect()
router = APIRouter()


@router.post("/v1/messages")
async def messages(request: Request) -> Response:
    """Message creation with simulated latency, limits and faults."""
    return await handle_model_request(request, ANTHROPIC)
