"""Deterministic answers: pure functions from a conversation to a reply.

Rules (the same for every API dialect):

1. ``digest`` = first 12 hex characters of the SHA-256 of the canonical JSON of
   the system prompt and the normalised messages (see ``conversation_digest``).
2. The *last user message* is the last user message with non-empty text. Tool
   results "in this turn" are those in that message or after it.
3. Tool calls: a non-output tool is called when its name appears as a whole
   word in the last user message and it has no result in this turn. Several
   named tools give several calls in one reply, in order of first mention.
   Arguments come from ``name({...json...})`` in the message when present and
   valid, else from the tool's JSON Schema (required properties only, see
   ``schema_values``). Ids are ``<prefix>_<digest>_<i>`` (``call`` for OpenAI,
   ``toolu`` for Anthropic). A ``tool_choice`` naming a tool forces that tool;
   ``required``/``any`` forces the first unanswered tool; ``none`` disables
   tool calls.
4. Structured output: when an output tool (``final_result`` or
   ``final_result_<Name>``) is offered and no other call is due, the final
   answer is a call to the first output tool, with every schema property
   filled and strings set to ``sim-<first 8 hex of digest>``.
5. Otherwise the answer is text ``[<model>#<digest>] <summary>`` where summary
   is ``Reviewed: <first 25 words of the last user message>`` (``...``
   appended when longer) followed, when tool results exist in this turn, by
   `` Tool results: name=<compact json>; name=<compact json>`` (each value cut
   at 200 characters). With ``SIM_ECHO`` in the last user message the
   summary is that message verbatim. A ``response_format`` of ``json_schema``
   turns the answer into JSON built from the schema (as for output tools);
   ``json_object`` gives ``{"answer": <text answer>}``.
6. Text longer than ``max_tokens`` tokens is cut to exactly ``max_tokens``
   tokens and flagged as truncated. Tool calls are never truncated.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from include.llm_simulator.conversation import Conversation, ToolCall, ToolSpec
from include.llm_simulator.schema_values import example_value
from include.llm_simulator.tokens import count_tokens, tool_call_tokens, truncate_to_tokens

OUTPUT_TOOL_NAME = "final_result"
ECHO_DIRECTIVE = "SIM_ECHO"
SUMMARY_WORDS = 25
RESULT_PREVIEW_CHARS = 200


@dataclass(frozen=True)
class Answer:
    """A generated reply: either text or tool calls."""

    digest: str
    text: str | None
    tool_calls: tuple[ToolCall, ...]
    truncated: bool
    output_tokens: int


def canonical_json(value: Any) -> str:
    """Stable JSON text: sorted keys, no whitespace, unicode kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def conversation_digest(conversation: Conversation) -> str:
    """12 hex chars identifying the system prompt plus messages (ids excluded)."""
    payload = {
        "system": conversation.system,
        "messages": [
            {
                "role": m.role,
                "text": m.text,
                "tool_calls": [{"name": c.name, "arguments": c.arguments_object()} for c in m.tool_calls],
                "tool_results": [{"name": r.name, "content": r.content} for r in m.tool_results],
            }
            for m in conversation.messages
        ],
    }
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()[:12]


def is_output_tool(name: str) -> bool:
    """Whether ``name`` is a pydantic-ai style structured-output tool."""
    return name == OUTPUT_TOOL_NAME or name.startswith(OUTPUT_TOOL_NAME + "_")


def last_user_index(conversation: Conversation) -> int:
    """Index of the last user message with text, or -1."""
    for index in range(len(conversation.messages) - 1, -1, -1):
        message = conversation.messages[index]
        if message.role == "user" and message.text.strip():
            return index
    return -1


def turn_results(conversation: Conversation) -> list[tuple[str, str]]:
    """(name, content) of tool results from the last user message onwards."""
    start = max(last_user_index(conversation), 0)
    return [(r.name, r.content) for m in conversation.messages[start:] for r in m.tool_results]


def _name_pattern(name: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(name) + r"(?!\w)")


def explicit_arguments(text: str, name: str) -> dict[str, Any] | None:
    """Arguments written as ``name({...})`` in ``text``, if valid JSON."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"(?<!\w)" + re.escape(name) + r"\(\s*", text):
        try:
            value, _ = decoder.raw_decode(text, match.end())
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def mentioned_tools(text: str, tools: tuple[ToolSpec, ...]) -> list[ToolSpec]:
    """Non-output tools named in ``text``, in order of first mention."""
    found: list[tuple[int, int, ToolSpec]] = []
    for order, tool in enumerate(tools):
        if is_output_tool(tool.name):
            continue
        match = _name_pattern(tool.name).search(text)
        if match:
            found.append((match.start(), order, tool))
    return [tool for _, _, tool in sorted(found, key=lambda item: (item[0], item[1]))]


def structured_text(digest: str) -> str:
    """String value used in generated structured output."""
    return f"sim-{digest[:8]}"


def _call(tool: ToolSpec, digest: str, index: int, prefix: str, user_text: str) -> ToolCall:
    if is_output_tool(tool.name):
        args = example_value(tool.parameters, all_properties=True, text=structured_text(digest))
    else:
        args = explicit_arguments(user_text, tool.name)
        if args is None:
            args = example_value(tool.parameters)
    return ToolCall(id=f"{prefix}_{digest}_{index}", name=tool.name, arguments=json.dumps(args, ensure_ascii=False))


def _choose_tools(conversation: Conversation, user_text: str) -> list[ToolSpec]:
    choice = conversation.tool_choice
    if choice.mode == "none" or not conversation.tools:
        return []
    answered = {name for name, _ in turn_results(conversation)}
    unanswered = [t for t in conversation.tools if t.name not in answered]
    if choice.mode == "tool":
        return [t for t in unanswered if t.name == choice.name][:1]
    chosen = [t for t in mentioned_tools(user_text, conversation.tools) if t.name not in answered]
    if chosen:
        return chosen
    output_tools = [t for t in conversation.tools if is_output_tool(t.name)]
    if output_tools:
        return output_tools[:1]
    if choice.mode == "required":
        return unanswered[:1]
    return []


def _preview(content: str) -> str:
    try:
        text = canonical_json(json.loads(content))
    except ValueError:
        text = json.dumps(content, ensure_ascii=False)
    return text if len(text) <= RESULT_PREVIEW_CHARS else text[:RESULT_PREVIEW_CHARS] + "..."


def summary(conversation: Conversation) -> str:
    """The human-readable part of a text answer (rule 5)."""
    index = last_user_index(conversation)
    user_text = conversation.messages[index].text if index >= 0 else ""
    if ECHO_DIRECTIVE in user_text:
        return user_text
    words = user_text.split()
    reviewed = " ".join(words[:SUMMARY_WORDS]) + (" ..." if len(words) > SUMMARY_WORDS else "")
    text = f"Reviewed: {reviewed}".rstrip()
    results = turn_results(conversation)
    if results:
        text += " Tool results: " + "; ".join(f"{name}={_preview(content)}" for name, content in results)
    return text


def _final_text(conversation: Conversation, digest: str) -> str:
    text = f"[{conversation.model}#{digest}] {summary(conversation)}"
    fmt = conversation.response_format
    if fmt is not None and fmt.kind == "json_schema":
        value = example_value(fmt.schema or {}, all_properties=True, text=structured_text(digest))
        return json.dumps(value, ensure_ascii=False)
    if fmt is not None and fmt.kind == "json_object":
        return json.dumps({"answer": text}, ensure_ascii=False)
    return text


def generate_answer(conversation: Conversation, id_prefix: str = "call") -> Answer:
    """The simulator's reply to ``conversation`` (rules in the module docstring)."""
    digest = conversation_digest(conversation)
    index = last_user_index(conversation)
    user_text = conversation.messages[index].text if index >= 0 else ""
    tools = _choose_tools(conversation, user_text)
    if tools:
        calls = tuple(_call(tool, digest, i, id_prefix, user_text) for i, tool in enumerate(tools))
        return Answer(digest, None, calls, False, tool_call_tokens(calls))
    text = _final_text(conversation, digest)
    truncated = False
    limit = conversation.max_tokens
    if limit is not None and count_tokens(text) > limit:
        text = truncate_to_tokens(text, limit)
        truncated = True
    return Answer(digest, text, (), truncated, count_tokens(text))
