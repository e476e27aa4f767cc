"""Deterministic token counting.

The simulator does not use a real tokenizer. Instead a token is any run of
word characters or any single non-space punctuation character::

    count_tokens(text) = len(re.findall(r"\\w+|[^\\w\\s]", text))

Prompt tokens (``prompt_tokens`` / ``input_tokens`` in responses) are:

* 3 per message (``MESSAGE_OVERHEAD``), where every non-system message counts,
  every OpenAI ``system``/``developer`` message counts, the Anthropic
  ``system`` prompt and the Responses ``instructions`` count once each when
  non-empty, and in the Responses API an assistant message together with the
  ``function_call`` items right after it is one message (each
  ``function_call_output`` is one, like a Chat Completions ``tool`` message);
* plus ``count_tokens`` of all message text: system text, user and assistant
  text, tool result content and tool call arguments (the JSON text as sent;
  for Anthropic ``tool_use.input`` it is ``json.dumps(input, ensure_ascii=False)``);
* plus ``count_tokens(json.dumps(tools, ensure_ascii=False))`` of the raw
  ``tools`` list of the request, when present.

Completion tokens are ``count_tokens`` of the answer text, or for tool calls
the sum over calls of ``count_tokens(name) + count_tokens(arguments)``.

Because whitespace is never a token, the counts do not depend on JSON
formatting, so tests can recompute them exactly.
"""

from __future__ import annotations

import json
import re
from typing import Any

from include.llm_simulator.conversation import Conversation, ToolCall

TOKEN_PATTERN = re.compile(r"\w+|[^\w\s]")
MESSAGE_OVERHEAD = 3


def count_tokens(text: str) -> int:
    """Number of simulated tokens in ``text``."""
    return len(TOKEN_PATTERN.findall(text))


def json_text(value: Any) -> str:
    """JSON text used whenever a structured value has to be counted."""
    return json.dumps(value, ensure_ascii=False)


def prompt_tokens(conversation: Conversation) -> int:
    """Prompt token count of a parsed request, as documented above."""
    total = 0
    for part in conversation.system_parts:
        total += MESSAGE_OVERHEAD + count_tokens(part)
    for message in conversation.messages:
        total += MESSAGE_OVERHEAD + count_tokens(message.text)
        total += sum(count_tokens(call.arguments) for call in message.tool_calls)
        total += sum(count_tokens(result.content) for result in message.tool_results)
    if conversation.tools_json:
        total += count_tokens(conversation.tools_json)
    return total


def tool_call_tokens(calls: tuple[ToolCall, ...]) -> int:
    """Completion tokens of an answer made of tool calls."""
    return sum(count_tokens(call.name) + count_tokens(call.arguments) for call in calls)


def truncate_to_tokens(text: str, limit: int) -> str:
    """The prefix of ``text`` that holds exactly its first ``limit`` tokens."""
    if limit <= 0:
        return ""
    for index, match in enumerate(TOKEN_PATTERN.finditer(text), start=1):
        if index == limit:
            return text[: match.end()]
    return text
