"""Deterministic prompt caching, reported the way each real API reports it.

A prompt is split into *units* in cache order, each with its simulated token
count (the units of a request always add up to its ``prompt_tokens``, see
``tokens``) and a key (canonical JSON of the unit's content). A prefix of a
prompt is identified by a SHA-256 chain over the keys of its units, inside a
namespace of (endpoint, SHA-256 of the API key, model): caches are never
shared between keys, models or the three endpoints. Prefixes are held in
memory only, bounded (least recently used first out), and cleared by
``POST /_sim/reset``. Only requests answered with 200 add prefixes; a failed
or faulted request neither reads nor writes the cache. Rate limits (``--tpm``)
count every prompt token, cached or not.

OpenAI (``/v1/chat/completions`` and ``/v1/responses``): automatic caching.
Units are the system/developer messages (the Responses ``instructions``
first), then one unit for the ``tools`` (with ``response_format`` /
``text.format`` in its key, 0 tokens when there are no tools), then every
other message in order. Every prefix of every answered request is
remembered. Let ``T`` be the token count of the longest remembered prefix of a
request: when ``T >= cache_min_tokens`` the request reports
``cached tokens = floor(T / 128) * 128``, else 0. So, as with the real API, only
prompts of at least ``cache_min_tokens`` tokens are ever cached, and a long
prompt that merely starts like an earlier short one reads nothing. Cached
tokens are part of ``prompt_tokens``/``input_tokens``.

Anthropic (``/v1/messages``): explicit caching. Units are each tool
definition, each system block (a string system prompt is one unit), then each
content block of each message (string content is one unit); the 3-token
message overhead belongs to a message's first unit. A unit whose block has
``cache_control`` is a breakpoint; a top-level ``cache_control`` (automatic
caching) adds a breakpoint on the last block. ``cache_control`` itself is not
part of a unit's key (a tool's is counted in its tokens, since ``tokens``
counts the raw ``tools`` list; a JSON list's brackets and commas go to the
tools next to them). Without any breakpoint nothing is read or written and
the usage has no cache fields. Otherwise, as the real API:

* read: the longest remembered prefix that ends at a breakpoint or up to
  ``LOOKBACK_UNITS - 1`` units before one; ``cache_read_input_tokens`` = its
  tokens;
* write: every breakpoint after that point whose prefix has at least
  ``cache_min_tokens`` tokens is remembered; ``cache_creation_input_tokens``
  = tokens from the read point to the last such breakpoint, split in
  ``cache_creation`` by the TTL (``5m`` default, or ``1h``) of the breakpoint
  that ends each written stretch;
* ``input_tokens`` = the tokens that were neither read nor written.

When the prefix up to the last breakpoint is under ``cache_min_tokens`` nothing
is cached and both cache fields are 0. More than ``MAX_BREAKPOINTS``
breakpoints, a ``cache_control`` that is not ``{"type": "ephemeral"}`` with an
optional ``ttl`` of ``5m``/``1h``, or a ``1h`` breakpoint after a ``5m`` one
give a 400, as the real API does.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

from include.llm_simulator.conversation import Conversation, Message
from include.llm_simulator.tokens import MESSAGE_OVERHEAD, count_tokens

OPENAI_CACHE_GRANULARITY = 128
LOOKBACK_UNITS = 20
MAX_BREAKPOINTS = 4
MAX_ENTRIES = 200_000
DEFAULT_TTL = "5m"
TTLS = ("5m", "1h")

Mode = Literal["automatic", "explicit"]


@dataclass(frozen=True)
class CacheUnit:
    """One cacheable piece of a prompt; ``breakpoint`` is its ``cache_control`` TTL (explicit caching)."""

    key: str
    tokens: int
    breakpoint: str | None = None


@dataclass(frozen=True)
class CachePlan:
    """How a request may use the cache: no plan (``None``) means it never does."""

    mode: Mode
    units: tuple[CacheUnit, ...]

    @property
    def tokens(self) -> int:
        return sum(unit.tokens for unit in self.units)


@dataclass(frozen=True)
class CacheUsage:
    """Cache figures of one answered request (all 0 on a miss)."""

    read: int = 0
    write_5m: int = 0
    write_1h: int = 0
    explicit: bool = False

    @property
    def write(self) -> int:
        return self.write_5m + self.write_1h


NO_CACHE = CacheUsage()


def unit_key(value: Any) -> str:
    """Canonical JSON of a unit's content (sorted keys, no whitespace)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def namespace(path: str, api_key: str | None, model: str) -> str:
    """Cache namespace of one endpoint, API key and model; the key itself is only kept hashed."""
    key_hash = hashlib.sha256((api_key or "").encode("utf-8")).hexdigest()
    return unit_key([path, key_hash, model])


def prefix_hashes(space: str, units: tuple[CacheUnit, ...]) -> list[str]:
    """Hash of every prefix: element ``i`` identifies units ``0..i``."""
    hashes: list[str] = []
    current = hashlib.sha256(space.encode("utf-8")).hexdigest()
    for unit in units:
        current = hashlib.sha256((current + "\n" + unit.key).encode("utf-8")).hexdigest()
        hashes.append(current)
    return hashes


def cumulative_tokens(units: tuple[CacheUnit, ...]) -> list[int]:
    """Token count of every prefix: element ``i`` counts units ``0..i``."""
    totals: list[int] = []
    running = 0
    for unit in units:
        running += unit.tokens
        totals.append(running)
    return totals


def _message_key(message: Message) -> str:
    return unit_key({
        "role": message.role, "text": message.text,
        "tool_calls": [[c.id, c.name, c.arguments] for c in message.tool_calls],
        "tool_results": [[r.call_id, r.content] for r in message.tool_results],
    })


def automatic_plan(conversation: Conversation) -> CachePlan:
    """OpenAI units: system parts, the tools (with the output format), then the other messages."""
    fmt = conversation.response_format
    units = [CacheUnit(unit_key({"system": part}), MESSAGE_OVERHEAD + count_tokens(part))
             for part in conversation.system_parts]
    units.append(CacheUnit(
        unit_key({"tools": conversation.tools_json,
                  "format": None if fmt is None else {"kind": fmt.kind, "schema": fmt.schema}}),
        count_tokens(conversation.tools_json) if conversation.tools_json else 0,
    ))
    for message in conversation.messages:
        tokens = MESSAGE_OVERHEAD + count_tokens(message.text)
        tokens += sum(count_tokens(call.arguments) for call in message.tool_calls)
        tokens += sum(count_tokens(result.content) for result in message.tool_results)
        units.append(CacheUnit(_message_key(message), tokens))
    return CachePlan("automatic", tuple(units))


class PromptCache:
    """Remembered prompt prefixes of one server; see the module docstring for the rules."""

    def __init__(self, min_tokens: int, max_entries: int = MAX_ENTRIES) -> None:
        self.min_tokens = min_tokens
        self.max_entries = max_entries
        self._entries: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def reset(self) -> None:
        self._entries.clear()

    def _seen(self, digest: str) -> bool:
        if digest in self._entries:
            self._entries.move_to_end(digest)
            return True
        return False

    def _remember(self, digest: str) -> None:
        self._entries[digest] = None
        self._entries.move_to_end(digest)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def apply(self, space: str, plan: CachePlan | None, prompt_tokens: int) -> CacheUsage:
        """Look ``plan`` up, remember what it writes, and return its cache figures."""
        if plan is None or not plan.units:
            return NO_CACHE
        if plan.tokens != prompt_tokens:
            raise RuntimeError(f"cache units count {plan.tokens} tokens, the prompt {prompt_tokens}")
        hashes = prefix_hashes(space, plan.units)
        totals = cumulative_tokens(plan.units)
        if plan.mode == "automatic":
            return self._automatic(hashes, totals)
        return self._explicit(plan.units, hashes, totals)

    def _automatic(self, hashes: list[str], totals: list[int]) -> CacheUsage:
        longest = next((i for i in range(len(hashes) - 1, -1, -1) if self._seen(hashes[i])), None)
        for digest in hashes:
            self._remember(digest)
        if longest is None or totals[longest] < self.min_tokens:
            return NO_CACHE
        return CacheUsage(read=totals[longest] // OPENAI_CACHE_GRANULARITY * OPENAI_CACHE_GRANULARITY)

    def _explicit(self, units: tuple[CacheUnit, ...], hashes: list[str], totals: list[int]) -> CacheUsage:
        breakpoints = [i for i, unit in enumerate(units) if unit.breakpoint is not None]
        if not breakpoints:
            return CacheUsage(explicit=True)
        hit = -1
        for position in breakpoints:
            for candidate in range(position, max(position - LOOKBACK_UNITS, -1), -1):
                if candidate <= hit:
                    break
                if self._seen(hashes[candidate]):
                    hit = candidate
                    break
        read = totals[hit] if hit >= 0 else 0
        written = {"5m": 0, "1h": 0}
        start = read
        for position in breakpoints:
            if position <= hit or totals[position] < self.min_tokens:
                continue
            written[units[position].breakpoint or DEFAULT_TTL] += totals[position] - start
            start = totals[position]
            self._remember(hashes[position])
        return CacheUsage(read=read, write_5m=written["5m"], write_1h=written["1h"], explicit=True)
