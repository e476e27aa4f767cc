"""Prompt caching, per wire format, with the official SDKs against real simulator subprocesses.

Expected figures are recomputed from the documented rules (``include/llm_simulator/caching.py``) with
``sim_expect.tokens``, never with the simulator's own code.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from include.llm_simulator.testing import SimulatorHandle, running_simulator
from sim_expect import OVERHEAD, tokens

MIN = 300  # cache_min_tokens of the `cached` simulator
MODEL = "gpt-4o-mini"
CLAUDE = "claude-sim"
# One token per word: "policy0 policy1 ...".
SYSTEM = " ".join(f"policy{i}" for i in range(400))
LONG_SYSTEM = " ".join(f"policy{i}" for i in range(1100))
TOOLS = [{"type": "function", "function": {"name": "get_ledger", "description": "Ledger balance", "parameters": {
    "type": "object", "properties": {"account": {"type": "string"}}, "required": ["account"]}}}]
ANT_TOOLS = [
    {"name": "get_ledger", "description": "Ledger balance", "input_schema": {
        "type": "object", "properties": {"account": {"type": "string"}}, "required": ["account"]}},
    {"name": "get_payroll", "description": "Payroll register", "input_schema": {
        "type": "object", "properties": {"period": {"type": "string"}}, "required": ["period"]}},
]
EPHEMERAL = {"type": "ephemeral"}


def floor128(n: int) -> int:
    return n // 128 * 128


def words(n: int, stem: str = "w") -> str:
    return " ".join(f"{stem}{i}" for i in range(n))


@pytest.fixture(scope="module")
def cached_sim() -> Iterator[SimulatorHandle]:
    with running_simulator(cache_min_tokens=MIN) as sim:
        yield sim


@pytest.fixture
def cached(cached_sim: SimulatorHandle) -> SimulatorHandle:
    cached_sim.reset()
    return cached_sim


@pytest.fixture
def coai(cached: SimulatorHandle) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=cached.openai_base_url, api_key="test-key", max_retries=0) as client:
        yield client


@pytest.fixture
def cant(cached: SimulatorHandle) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=cached.base_url, api_key="test-key", max_retries=0) as client:
        yield client


def _chat(client: openai.OpenAI, messages: list[dict[str, Any]], **kwargs: Any):
    return client.chat.completions.create(model=kwargs.pop("model", MODEL), messages=messages, **kwargs)


# --- OpenAI chat completions: automatic caching -------------------------------------------------------------


def test_chat_second_round_reads_the_first_rounds_prefix(cached, coai: openai.OpenAI) -> None:
    first_messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Check the books"}]
    first = _chat(coai, first_messages, tools=TOOLS)
    prefix = OVERHEAD + tokens(SYSTEM) + tokens(json.dumps(TOOLS)) + OVERHEAD + tokens("Check the books")
    assert first.usage.prompt_tokens == prefix
    assert first.usage.prompt_tokens_details is None  # a miss reports usage exactly as before
    assert "prompt_tokens_details" not in cached.requests()[0]["response"]["usage"]

    second_messages = first_messages + [
        {"role": "assistant", "content": "Looking.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_ledger", "arguments": '{"account": "1000"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "1000: 5 EUR"},
    ]
    second = _chat(coai, second_messages, tools=TOOLS)
    total = prefix + OVERHEAD + tokens("Looking.") + tokens('{"account": "1000"}') + OVERHEAD + tokens("1000: 5 EUR")
    assert second.usage.prompt_tokens == total  # cached tokens stay part of prompt_tokens
    assert second.usage.prompt_tokens_details.cached_tokens == floor128(prefix) > 0
    assert second.usage.total_tokens == total + second.usage.completion_tokens
    entry = cached.requests()[1]
    assert entry["usage"] == {"input_tokens": total, "output_tokens": second.usage.completion_tokens,
                              "cache_read_tokens": floor128(prefix), "cache_write_tokens": 0}
    assert entry["response"]["usage"]["prompt_tokens_details"] == {"cached_tokens": floor128(prefix), "audio_tokens": 0}


def test_chat_identical_request_reads_its_whole_prompt(coai: openai.OpenAI) -> None:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "again"}]
    first, again = _chat(coai, messages), _chat(coai, messages)
    assert first.usage.prompt_tokens_details is None
    assert again.usage.prompt_tokens_details.cached_tokens == floor128(first.usage.prompt_tokens)
    assert again.choices[0].message.content == first.choices[0].message.content  # answers do not change


def test_chat_prefix_is_system_then_tools_then_messages(coai: openai.OpenAI) -> None:
    _chat(coai, [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "one"}], tools=TOOLS)
    other_tools = _chat(coai, [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "one"}])
    assert other_tools.usage.prompt_tokens_details.cached_tokens == floor128(OVERHEAD + tokens(SYSTEM))
    other_system = _chat(coai, [{"role": "system", "content": SYSTEM + " extra"}, {"role": "user", "content": "one"}],
                         tools=TOOLS)
    assert other_system.usage.prompt_tokens_details is None
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    other_format = _chat(coai, [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "one"}],
                         tools=TOOLS, response_format=fmt)
    assert other_format.usage.prompt_tokens_details.cached_tokens == floor128(OVERHEAD + tokens(SYSTEM))


def test_chat_cache_min_tokens_applies_to_the_cached_prefix(coai: openai.OpenAI) -> None:
    # prompt = (3 + system) + (3 + user): exactly MIN - 1, then exactly MIN tokens.
    below = [{"role": "system", "content": words(200)}, {"role": "user", "content": words(MIN - 207, "u")}]
    assert [_chat(coai, below).usage.prompt_tokens for _ in range(2)] == [MIN - 1] * 2
    assert _chat(coai, below).usage.prompt_tokens_details is None
    # A long prompt that starts with the short one reads nothing: a prompt under MIN is never cached.
    longer = _chat(coai, below + [{"role": "assistant", "content": "ok"}, {"role": "user", "content": words(50)}])
    assert longer.usage.prompt_tokens > MIN and longer.usage.prompt_tokens_details is None
    at = [{"role": "system", "content": words(200)}, {"role": "user", "content": words(MIN - 206, "u")}]
    first = _chat(coai, at)
    assert first.usage.prompt_tokens == MIN and first.usage.prompt_tokens_details is None
    assert _chat(coai, at).usage.prompt_tokens_details.cached_tokens == floor128(MIN) == 256


def test_chat_default_threshold_is_1024(oai: openai.OpenAI) -> None:
    short = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "hi"}]
    assert [_chat(oai, short).usage.prompt_tokens_details for _ in range(2)] == [None, None]
    long = [{"role": "system", "content": LONG_SYSTEM}, {"role": "user", "content": "hi"}]
    first, second = _chat(oai, long), _chat(oai, long)
    assert first.usage.prompt_tokens_details is None
    assert first.usage.prompt_tokens == OVERHEAD + 1100 + OVERHEAD + 1
    assert second.usage.prompt_tokens_details.cached_tokens == 1024


def test_chat_cache_is_per_key_and_model_and_cleared_by_reset(cached, coai: openai.OpenAI) -> None:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "scoped"}]
    _chat(coai, messages)
    with openai.OpenAI(base_url=cached.openai_base_url, api_key="other-key", max_retries=0) as other:
        assert _chat(other, messages).usage.prompt_tokens_details is None
    assert _chat(coai, messages, model="gpt-4o").usage.prompt_tokens_details is None
    assert _chat(coai, messages).usage.prompt_tokens_details.cached_tokens > 0
    cached.reset()
    assert _chat(coai, messages).usage.prompt_tokens_details is None


def test_chat_failed_requests_do_not_fill_the_cache(cached, coai: openai.OpenAI) -> None:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "fail first"}]
    cached.script(["500"])
    with pytest.raises(openai.InternalServerError):
        _chat(coai, messages)
    assert _chat(coai, messages).usage.prompt_tokens_details is None
    assert _chat(coai, messages).usage.prompt_tokens_details.cached_tokens > 0


# --- OpenAI Responses API: automatic caching ----------------------------------------------------------------


def test_responses_tool_round_reads_cached_tokens(cached, coai: openai.OpenAI) -> None:
    tools = [{"type": "function", "name": "get_ledger", "description": "Ledger", "strict": False,
              "parameters": TOOLS[0]["function"]["parameters"]}]
    first_input = [{"role": "user", "content": "Use get_ledger now"}]
    first = coai.responses.create(model=MODEL, instructions=SYSTEM, input=first_input, tools=tools)
    prefix = OVERHEAD + tokens(SYSTEM) + tokens(json.dumps(tools)) + OVERHEAD + tokens("Use get_ledger now")
    assert first.usage.input_tokens == prefix
    assert first.usage.input_tokens_details.cached_tokens == 0
    [call] = first.output
    second = coai.responses.create(model=MODEL, instructions=SYSTEM, tools=tools, input=first_input + [
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "1000: 5 EUR"},
    ])
    assert second.usage.input_tokens == prefix + OVERHEAD + tokens(call.arguments) + OVERHEAD + tokens("1000: 5 EUR")
    assert second.usage.input_tokens_details.cached_tokens == floor128(prefix) > 0
    assert second.usage.input_tokens_details.cache_write_tokens == 0
    assert cached.requests()[1]["usage"]["cache_read_tokens"] == floor128(prefix)
    cached.reset()
    again = coai.responses.create(model=MODEL, instructions=SYSTEM, input=first_input, tools=tools)
    assert again.usage.input_tokens_details.cached_tokens == 0


def test_responses_threshold_and_separate_from_chat(coai: openai.OpenAI) -> None:
    short = coai.responses.create(model=MODEL, instructions=words(100), input="x")
    assert coai.responses.create(model=MODEL, instructions=words(100), input="x").usage.input_tokens_details \
        .cached_tokens == 0 < short.usage.input_tokens < MIN
    _chat(coai, [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "shared?"}])
    response = coai.responses.create(model=MODEL, instructions=SYSTEM, input="shared?")
    assert response.usage.input_tokens_details.cached_tokens == 0  # each endpoint has its own cache
    repeat = coai.responses.create(model=MODEL, instructions=SYSTEM, input="shared?")
    assert repeat.usage.input_tokens_details.cached_tokens == floor128(response.usage.input_tokens)


# --- Anthropic messages: explicit caching -------------------------------------------------------------------


def _ask(client: anthropic.Anthropic, messages: list[dict[str, Any]], **kwargs: Any):
    return client.messages.create(model=CLAUDE, max_tokens=200, messages=messages, **kwargs)


def _cache_figures(response) -> tuple[int, int, int]:
    usage = response.usage
    return usage.input_tokens, usage.cache_creation_input_tokens, usage.cache_read_input_tokens


def test_anthropic_without_cache_control_never_caches(cached, cant: anthropic.Anthropic) -> None:
    kwargs = {"system": SYSTEM, "tools": ANT_TOOLS}
    first, second = (_ask(cant, [{"role": "user", "content": "hi"}], **kwargs) for _ in range(2))
    total = tokens(json.dumps(ANT_TOOLS)) + OVERHEAD + tokens(SYSTEM) + OVERHEAD + 1
    assert first.usage.input_tokens == second.usage.input_tokens == total
    assert second.usage.cache_read_input_tokens is None and second.usage.cache_creation_input_tokens is None
    assert [e["response"]["usage"] for e in cached.requests()] == \
        [{"input_tokens": total, "output_tokens": first.usage.output_tokens}] * 2


def test_anthropic_system_breakpoint_writes_then_reads(cached, cant: anthropic.Anthropic) -> None:
    system = [{"type": "text", "text": SYSTEM, "cache_control": EPHEMERAL}]
    cached_part = tokens(json.dumps(ANT_TOOLS)) + OVERHEAD + tokens(SYSTEM)
    first = _ask(cant, [{"role": "user", "content": "first question"}], system=system, tools=ANT_TOOLS)
    assert _cache_figures(first) == (OVERHEAD + tokens("first question"), cached_part, 0)
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == cached_part
    assert first.usage.cache_creation.ephemeral_1h_input_tokens == 0
    second = _ask(cant, [{"role": "user", "content": "another, longer question"}], system=system, tools=ANT_TOOLS)
    assert _cache_figures(second) == (OVERHEAD + tokens("another, longer question"), 0, cached_part)
    entries = cached.requests()
    assert entries[0]["usage"] == {"input_tokens": cached_part + OVERHEAD + 2, "output_tokens": first.usage.output_tokens,
                                   "cache_read_tokens": 0, "cache_write_tokens": cached_part}
    assert entries[1]["usage"]["cache_read_tokens"] == cached_part
    # Without the breakpoint the same prompt neither reads nor writes.
    plain = _ask(cant, [{"role": "user", "content": "first question"}], system=SYSTEM, tools=ANT_TOOLS)
    assert plain.usage.cache_read_input_tokens is None


def test_anthropic_tool_round_with_message_breakpoints(cant: anthropic.Anthropic) -> None:
    tools = [ANT_TOOLS[0], {**ANT_TOOLS[1], "cache_control": EPHEMERAL}]
    system = [{"type": "text", "text": SYSTEM, "cache_control": EPHEMERAL}]
    user = {"role": "user", "content": [{"type": "text", "text": "Use get_ledger", "cache_control": EPHEMERAL}]}
    first = _ask(cant, [user], system=system, tools=tools)
    tools_tokens = tokens(json.dumps(tools))
    upto_user = tools_tokens + OVERHEAD + tokens(SYSTEM) + OVERHEAD + tokens("Use get_ledger")
    assert _cache_figures(first) == (0, upto_user, 0)
    [call] = first.content
    turn = [
        {"role": "user", "content": [{"type": "text", "text": "Use get_ledger"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": call.id, "name": call.name, "input": call.input}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "5 EUR",
                                      "cache_control": EPHEMERAL}]},
    ]
    second = _ask(cant, turn, system=system, tools=tools)
    rest = OVERHEAD + tokens(json.dumps(call.input)) + OVERHEAD + tokens("5 EUR")
    # The earlier breakpoint on the user message is gone, but it is within the lookback of the new one.
    assert _cache_figures(second) == (0, rest, upto_user)


def test_anthropic_top_level_cache_control_is_automatic_caching(cant: anthropic.Anthropic) -> None:
    messages = [{"role": "user", "content": "A question about the ledger"}]
    whole = OVERHEAD + tokens(SYSTEM) + OVERHEAD + tokens(messages[0]["content"])
    first = _ask(cant, messages, system=SYSTEM, extra_body={"cache_control": EPHEMERAL})
    assert _cache_figures(first) == (0, whole, 0)
    follow = messages + [{"role": "assistant", "content": "Sure."}, {"role": "user", "content": "And cash?"}]
    second = _ask(cant, follow, system=SYSTEM, extra_body={"cache_control": EPHEMERAL})
    assert _cache_figures(second) == (0, OVERHEAD + 2 + OVERHEAD + 3, whole)


def test_anthropic_lookback_is_20_blocks(cant: anthropic.Anthropic) -> None:
    def convo(n: int, mark: int) -> list[dict[str, Any]]:
        blocks = [{"type": "text", "text": f"{SYSTEM} start"}] + [{"type": "text", "text": f"b{i}"} for i in range(n)]
        blocks[mark] = {**blocks[mark], "cache_control": EPHEMERAL}
        return [{"role": "user", "content": blocks}]

    first = _ask(cant, convo(1, 0))
    head = OVERHEAD + tokens(SYSTEM) + 1
    assert _cache_figures(first) == (1, head, 0)
    near = _ask(cant, convo(25, 19))  # breakpoint 19 blocks after the written one: found
    assert _cache_figures(near) == (6, 19, head)
    far = _ask(cant, convo(25, 21))  # 21 blocks after the first write (out of reach), 2 after `near`'s
    assert _cache_figures(far)[2] == head + 19
    cached_far = _ask(cant, convo(60, 45))  # 24 blocks after the newest write: nothing read
    assert _cache_figures(cached_far)[1:] == (head + 45, 0)


def test_anthropic_below_min_tokens_caches_nothing(cant: anthropic.Anthropic) -> None:
    system = [{"type": "text", "text": words(100), "cache_control": EPHEMERAL}]
    first, second = (_ask(cant, [{"role": "user", "content": "q"}], system=system) for _ in range(2))
    total = OVERHEAD + 100 + OVERHEAD + 1
    assert _cache_figures(first) == _cache_figures(second) == (total, 0, 0)


def test_anthropic_one_hour_ttl(cant: anthropic.Anthropic) -> None:
    system = [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    messages = [{"role": "user", "content": [{"type": "text", "text": words(10), "cache_control": EPHEMERAL}]}]
    first = _ask(cant, messages, system=system)
    assert first.usage.cache_creation.ephemeral_1h_input_tokens == OVERHEAD + tokens(SYSTEM)
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == OVERHEAD + 10
    assert first.usage.cache_creation_input_tokens == OVERHEAD + tokens(SYSTEM) + OVERHEAD + 10


@pytest.mark.parametrize(("body", "message"), [
    ({"system": [{"type": "text", "text": f"s{i}", "cache_control": EPHEMERAL} for i in range(4)],
      "cache_control": EPHEMERAL}, "A maximum of 4 blocks with cache_control may be provided. Found 5."),
    ({"system": [{"type": "text", "text": "s", "cache_control": {"type": "persistent"}}]},
     "cache_control.type: Input should be 'ephemeral'"),
    ({"system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral", "ttl": "2h"}}]},
     "cache_control.ttl: Input should be '5m' or '1h'"),
    ({"system": [{"type": "text", "text": "s", "cache_control": EPHEMERAL}],
      "cache_control": {"type": "ephemeral", "ttl": "1h"}},
     "a ttl='1h' cache_control block must not come after a ttl='5m' cache_control block"),
])
def test_anthropic_invalid_cache_control_is_400(cached, body: dict, message: str) -> None:
    request = {"model": CLAUDE, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], **body}
    response = httpx.post(cached.base_url + "/v1/messages", json=request,
                          headers={"x-api-key": "test-key", "anthropic-version": "2023-06-01"})
    assert response.status_code == 400
    assert response.json() == {"type": "error", "error": {"type": "invalid_request_error", "message": message}}


def test_anthropic_reset_clears_the_cache(cached, cant: anthropic.Anthropic) -> None:
    system = [{"type": "text", "text": SYSTEM, "cache_control": EPHEMERAL}]
    _ask(cant, [{"role": "user", "content": "q"}], system=system)
    assert _ask(cant, [{"role": "user", "content": "q"}], system=system).usage.cache_read_input_tokens > 0
    cached.reset()
    assert _ask(cant, [{"role": "user", "content": "q"}], system=system).usage.cache_read_input_tokens == 0


# --- pydantic-ai reads the figures into RequestUsage -------------------------------------------------------


def test_pydantic_ai_request_usage_carries_cache_tokens(cached) -> None:
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelResponse
    from pydantic_ai.models.anthropic import AnthropicModel
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.anthropic import AnthropicProvider
    from pydantic_ai.providers.openai import OpenAIProvider

    models = [
        (OpenAIChatModel(MODEL, provider=OpenAIProvider(base_url=cached.openai_base_url, api_key="k")), {}),
        # pydantic-ai's unified `cache` setting: breakpoints on instructions and tools, automatic caching after.
        (AnthropicModel("claude-sonnet-4-5", provider=AnthropicProvider(base_url=cached.base_url, api_key="k")),
         {"max_tokens": 1024, "cache": True}),
    ]
    for model, settings in models:
        cached.reset()
        agent = Agent(model, instructions=SYSTEM)

        @agent.tool_plain
        def get_ledger(account: str) -> str:
            return f"{account}: 5 EUR"

        result = agent.run_sync('Use get_ledger({"account": "1000"})', model_settings=settings)
        usages = [m.usage for m in result.all_messages() if isinstance(m, ModelResponse)]
        entries = cached.requests()
        assert len(usages) == len(entries) == 2
        for usage, entry in zip(usages, entries):
            assert usage.input_tokens == entry["usage"]["input_tokens"]
            assert usage.cache_read_tokens == entry["usage"].get("cache_read_tokens", 0)
            assert usage.cache_write_tokens == entry["usage"].get("cache_write_tokens", 0)
        assert usages[1].cache_read_tokens > 0


# --- pure: units, settings ---------------------------------------------------------------------------------


def _requests_of_every_shape() -> list[tuple[str, dict[str, Any]]]:
    tool_use = {"type": "tool_use", "id": "toolu_1", "name": "get_ledger", "input": {"account": "1000"},
                "cache_control": EPHEMERAL}
    return [
        ("chat", {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}),
        ("chat", {"model": MODEL, "tools": TOOLS, "messages": [
            {"role": "developer", "content": [{"type": "text", "text": "dev, note"}]},
            {"role": "user", "content": "Use get_ledger"}, {"role": "system", "content": "late system"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_ledger", "arguments": '{"a": 1}'}}]},
            {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "[1, 2]"}]},
        ], "response_format": {"type": "json_object"}}),
        ("responses", {"model": MODEL, "input": "plain text"}),
        ("responses", {"model": MODEL, "instructions": "Be brief.", "tools": [
            {"type": "function", "name": "f", "parameters": {}}, {"type": "web_search"}], "input": [
            {"role": "system", "content": "sys"}, {"role": "user", "content": "go"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "ok"}]},
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c", "output": "done"},
            {"type": "reasoning", "summary": []}]}),
        ("anthropic", {"model": CLAUDE, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
        ("anthropic", {"model": CLAUDE, "max_tokens": 5, "cache_control": EPHEMERAL,
                       "tools": [ANT_TOOLS[0], {**ANT_TOOLS[1], "cache_control": EPHEMERAL}],
                       "system": [{"type": "text", "text": "one"}, {"type": "image", "source": {}},
                                  {"type": "text", "text": "two, three", "cache_control": EPHEMERAL}],
                       "messages": [
                           {"role": "user", "content": []},
                           {"role": "user", "content": [{"type": "text", "text": "Use get_ledger"}]},
                           {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm"}, tool_use]},
                           {"role": "user", "content": [
                               {"type": "tool_result", "tool_use_id": "toolu_1", "content": [
                                   {"type": "text", "text": "5"}, {"type": "text", "text": "EUR"}]},
                               {"type": "text", "text": "and?"}]},
                           {"role": "assistant", "content": "Fine."}]}),
        ("anthropic", {"model": CLAUDE, "max_tokens": 5, "system": [{"type": "text", "text": ""}],
                       "messages": [{"role": "user", "content": None}], "cache_control": EPHEMERAL}),
    ]


@pytest.mark.parametrize(("dialect", "body"), _requests_of_every_shape())
def test_cache_units_add_up_to_prompt_tokens(dialect: str, body: dict[str, Any]) -> None:
    from include.llm_simulator.anthropic_api import ANTHROPIC
    from include.llm_simulator.openai_api import OPENAI
    from include.llm_simulator.responses_api import RESPONSES
    from include.llm_simulator.tokens import prompt_tokens

    parser = {"chat": OPENAI, "responses": RESPONSES, "anthropic": ANTHROPIC}[dialect]
    conversation = parser.parse(body)
    plan = parser.cache_plan(body, conversation)
    if dialect == "anthropic" and "cache_control" not in json.dumps(body):
        assert plan is None
        return
    assert plan.tokens == prompt_tokens(conversation) > 0
    assert plan.mode == ("explicit" if dialect == "anthropic" else "automatic")


def test_prompt_cache_is_bounded_least_recently_used_first() -> None:
    from include.llm_simulator.caching import CachePlan, CacheUnit, PromptCache

    cache = PromptCache(min_tokens=0, max_entries=3)

    def plan(*keys: str) -> CachePlan:
        return CachePlan("automatic", tuple(CacheUnit(k, 128) for k in keys))

    assert cache.apply("ns", plan("a"), 128).read == 0
    assert cache.apply("ns", plan("a"), 128).read == 128
    assert cache.apply("other", plan("a"), 128).read == 0
    assert cache.apply("ns", plan("b", "c"), 256).read == 0  # 4 prefixes seen, room for 3: ns/a went first
    assert len(cache) == 3
    assert cache.apply("ns", plan("a"), 128).read == 0
    with pytest.raises(RuntimeError):
        cache.apply("ns", plan("a"), 129)


def test_cache_min_tokens_setting_flag_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from include.llm_simulator.__main__ import settings_from_args
    from include.llm_simulator.settings import SimulatorSettings
    from include.llm_simulator.testing import _command

    assert SimulatorSettings().cache_min_tokens == settings_from_args([]).cache_min_tokens == 1024
    monkeypatch.setenv("LLM_SIM_CACHE_MIN_TOKENS", "64")
    assert settings_from_args([]).cache_min_tokens == 64
    assert settings_from_args(["--cache-min-tokens", "0"]).cache_min_tokens == 0
    with pytest.raises(ValueError):
        SimulatorSettings(cache_min_tokens=-1)
    command = _command("127.0.0.1", 1, Path("x.jsonl"), {"cache_min_tokens": 256})
    assert command[-2:] == ["--cache-min-tokens", "256"]
