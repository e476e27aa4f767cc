"""Fast in-process tests of the simulator's pure building blocks."""

from __future__ import annotations

import asyncio
import hashlib
import json

import pytest

from include.llm_simulator.__main__ import settings_from_args
from include.llm_simulator.answers import conversation_digest, explicit_arguments, generate_answer, summary
from include.llm_simulator.anthropic_api import ANTHROPIC
from include.llm_simulator.conversation import Conversation, Message, ToolCall, ToolChoice, ToolResult, ToolSpec
from include.llm_simulator.faults import FaultInjector
from include.llm_simulator.handling import InvalidRequest
from include.llm_simulator.openai_api import OPENAI
from include.llm_simulator.ratelimit import SlidingWindowLimiter, format_duration, retry_after_headers
from include.llm_simulator.schema_values import example_value
from include.llm_simulator.settings import SimulatorSettings
from include.llm_simulator.tokens import count_tokens, prompt_tokens, truncate_to_tokens

WEATHER = ToolSpec("get_weather", "", {
    "type": "object",
    "properties": {"city": {"type": "string"}, "units": {"enum": ["c", "f"]}, "days": {"type": "integer"}},
    "required": ["city", "units"],
})
TIME = ToolSpec("get_time", "", {"type": "object", "properties": {"tz": {"type": "string", "default": "UTC"}},
                                 "required": ["tz"]})
REVIEW = ToolSpec("final_result", "", {
    "type": "object",
    "properties": {"verdict": {"type": "string"}, "score": {"type": "integer"}, "ok": {"type": "boolean"},
                   "tags": {"type": "array", "items": {"type": "string"}}},
    "required": ["verdict"],
})


def conv(*messages: Message, tools: tuple[ToolSpec, ...] = (), system: tuple[str, ...] = ("Be terse.",),
         max_tokens: int | None = None, choice: ToolChoice = ToolChoice()) -> Conversation:
    return Conversation("sim-model", system, messages, tools, "", max_tokens, choice)


def test_count_tokens_words_and_punctuation() -> None:
    assert count_tokens("Hello, world!") == 4
    assert count_tokens("don't") == 3
    assert count_tokens("a  b\n c") == 3
    assert count_tokens('{"city": "Paris"}') == 9
    assert count_tokens("") == 0


def test_prompt_tokens_follow_documented_formula() -> None:
    conversation = Conversation(
        "m", ("Be terse.",),
        (Message("user", "Hello, world!"),
         Message("assistant", "", (ToolCall("c1", "f", '{"a": 1}'),)),
         Message("tool", "", (), (ToolResult("c1", "f", "done"),))),
        tools_json='[{"name": "f"}]',
    )
    # system 3+3, user 3+4, assistant 3+7 (args), tool 3+1, tools json 11
    assert prompt_tokens(conversation) == 6 + 7 + 10 + 4 + 11


def test_digest_is_sha256_of_canonical_json() -> None:
    conversation = conv(Message("user", "hi"))
    payload = {"system": "Be terse.", "messages": [{"role": "user", "text": "hi", "tool_calls": [], "tool_results": []}]}
    expected = hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]
    assert conversation_digest(conversation) == expected


def test_text_answer_is_deterministic_and_prompt_sensitive() -> None:
    first = generate_answer(conv(Message("user", "Please review the DAG")))
    again = generate_answer(conv(Message("user", "Please review the DAG")))
    other = generate_answer(conv(Message("user", "Please review the DAGs")))
    assert first == again
    assert first.text == f"[sim-model#{first.digest}] Reviewed: Please review the DAG"
    assert first.output_tokens == count_tokens(first.text)
    assert other.text != first.text and other.digest != first.digest
    assert not first.truncated and first.tool_calls == ()


def test_summary_cuts_at_25_words_and_sim_echo_is_verbatim() -> None:
    long_text = " ".join(f"w{i}" for i in range(30))
    assert summary(conv(Message("user", long_text))) == "Reviewed: " + " ".join(f"w{i}" for i in range(25)) + " ..."
    echo = "SIM_ECHO keep   every  word\nverbatim"
    assert summary(conv(Message("user", echo))) == echo


def test_parallel_tool_calls_in_mention_order_with_explicit_and_schema_arguments() -> None:
    text = 'First get_time, then get_weather({"city": "Oslo", "units": "f"}); not get_weather_x'
    answer = generate_answer(conv(Message("user", text), tools=(WEATHER, TIME)), "toolu")
    digest = answer.digest
    assert [(c.id, c.name, json.loads(c.arguments)) for c in answer.tool_calls] == [
        (f"toolu_{digest}_0", "get_time", {"tz": "UTC"}),
        (f"toolu_{digest}_1", "get_weather", {"city": "Oslo", "units": "f"}),
    ]
    assert answer.text is None
    assert answer.output_tokens == sum(count_tokens(c.name) + count_tokens(c.arguments) for c in answer.tool_calls)


def test_schema_arguments_required_only_and_whole_word_match() -> None:
    answer = generate_answer(conv(Message("user", "call get_weather now"), tools=(WEATHER,)))
    assert [json.loads(c.arguments) for c in answer.tool_calls] == [{"city": "sim", "units": "c"}]
    none = generate_answer(conv(Message("user", "call get_weathers now"), tools=(WEATHER,)))
    assert none.tool_calls == () and none.text is not None


def test_answered_tools_are_not_called_again_and_results_reach_the_text() -> None:
    conversation = conv(
        Message("user", "use get_weather and get_time"),
        Message("assistant", "", (ToolCall("a", "get_weather", "{}"), ToolCall("b", "get_time", "{}"))),
        Message("tool", "", (), (ToolResult("a", "get_weather", '{"temp": 21, "city": "Oslo"}'),)),
        Message("tool", "", (), (ToolResult("b", "get_time", "noon"),)),
        tools=(WEATHER, TIME),
    )
    answer = generate_answer(conversation)
    assert answer.tool_calls == ()
    assert answer.text == (f"[sim-model#{answer.digest}] Reviewed: use get_weather and get_time "
                           'Tool results: get_weather={"city":"Oslo","temp":21}; get_time="noon"')


def test_output_tool_is_the_final_answer_with_all_properties() -> None:
    answer = generate_answer(conv(Message("user", "review it"), tools=(REVIEW,)))
    assert len(answer.tool_calls) == 1
    call = answer.tool_calls[0]
    assert call.name == "final_result" and call.id == f"call_{answer.digest}_0"
    assert json.loads(call.arguments) == {"verdict": f"sim-{answer.digest[:8]}", "score": 1, "ok": True, "tags": []}


def test_output_tool_comes_after_named_tools() -> None:
    conversation = conv(Message("user", "use get_time"), tools=(TIME, REVIEW))
    assert [c.name for c in generate_answer(conversation).tool_calls] == ["get_time"]
    done = conv(Message("user", "use get_time"), Message("tool", "", (), (ToolResult("x", "get_time", "1"),)),
                tools=(TIME, REVIEW))
    assert [c.name for c in generate_answer(done).tool_calls] == ["final_result"]


def test_tool_choice_none_and_forced() -> None:
    assert generate_answer(conv(Message("user", "get_time"), tools=(TIME,), choice=ToolChoice("none"))).tool_calls == ()
    forced = generate_answer(conv(Message("user", "hello"), tools=(WEATHER, TIME), choice=ToolChoice("tool", "get_time")))
    assert [c.name for c in forced.tool_calls] == ["get_time"]
    required = generate_answer(conv(Message("user", "hello"), tools=(WEATHER, TIME), choice=ToolChoice("required")))
    assert [c.name for c in required.tool_calls] == ["get_weather"]


def test_max_tokens_truncates_to_exact_token_count() -> None:
    answer = generate_answer(conv(Message("user", "Please review the DAG"), max_tokens=6))
    assert answer.truncated
    assert answer.text == "[sim-model#" + answer.digest  # [ sim - model # <digest>
    assert answer.output_tokens == 6 == count_tokens(answer.text)
    assert truncate_to_tokens("a, b c", 2) == "a,"


def test_explicit_arguments_need_valid_json_object() -> None:
    assert explicit_arguments('f({"a": [1, 2]}) and more', "f") == {"a": [1, 2]}
    assert explicit_arguments("f({not json})", "f") is None
    assert explicit_arguments('ff({"a": 1})', "f") is None


def test_example_value_rules() -> None:
    schema = {
        "type": "object",
        "$defs": {"Item": {"type": "object", "properties": {"n": {"type": "integer", "minimum": 5}},
                           "required": ["n"]}},
        "properties": {
            "item": {"$ref": "#/$defs/Item"},
            "maybe": {"anyOf": [{"type": "null"}, {"type": "number", "maximum": 0.5}]},
            "when": {"type": "string", "format": "date"},
            "short": {"type": "string", "maxLength": 2},
            "many": {"type": "array", "items": {"type": "boolean"}, "minItems": 2},
            "kind": {"type": ["string", "null"], "enum": ["x", "y"]},
            "const": {"const": 7},
            "opt": {"type": "string"},
        },
        "required": ["item", "maybe", "when", "short", "many", "kind", "const"],
    }
    assert example_value(schema) == {"item": {"n": 5}, "maybe": 0.5, "when": "2024-01-01", "short": "si",
                                     "many": [True, True], "kind": "x", "const": 7}
    assert example_value(schema, all_properties=True, text="zz")["opt"] == "zz"


def test_openai_parser_maps_roles_and_rejects_streaming() -> None:
    body = {"model": "m", "max_completion_tokens": 9, "messages": [
        {"role": "developer", "content": "sys"},
        {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {}}]},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c", "content": "ok"},
    ]}
    parsed = OPENAI.parse(body)
    assert parsed.system_parts == ("sys",) and parsed.max_tokens == 9
    assert parsed.messages[0] == Message("user", "hi")
    assert parsed.messages[2].tool_results == (ToolResult("c", "f", "ok"),)
    with pytest.raises(InvalidRequest, match="streaming not supported by the simulator"):
        OPENAI.parse({**body, "stream": True})


def test_anthropic_parser_requires_max_tokens_and_reads_blocks() -> None:
    body = {"model": "m", "max_tokens": 10, "system": [{"type": "text", "text": "sys"}], "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                      "content": [{"type": "text", "text": "res"}]}]},
    ]}
    parsed = ANTHROPIC.parse(body)
    assert parsed.system_parts == ("sys",)
    assert parsed.messages[1].tool_calls == (ToolCall("t", "f", '{"a": 1}'),)
    assert parsed.messages[2].tool_results == (ToolResult("t", "f", "res"),)
    with pytest.raises(InvalidRequest, match="max_tokens"):
        ANTHROPIC.parse({k: v for k, v in body.items() if k != "max_tokens"})


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limiter_rpm_exact_window() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(rpm=3, clock=clock)

    async def scenario() -> None:
        results = []
        for _ in range(3):
            results.append(await limiter.acquire(10))
            clock.now += 1
        assert [r.allowed for r in results] == [True, True, True]
        assert [r.snapshot.remaining_requests for r in results] == [2, 1, 0]
        denied = await limiter.acquire(10)
        assert not denied.allowed and denied.limited_by == "requests"
        assert denied.retry_after == pytest.approx(57.0)
        clock.now = 1060.0
        assert (await limiter.acquire(10)).allowed
        assert not (await limiter.acquire(10)).allowed

    asyncio.run(scenario())


def test_limiter_tpm_counts_prompt_plus_max_tokens() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(tpm=100, clock=clock)

    async def scenario() -> None:
        first = await limiter.acquire(60)
        assert first.allowed and first.snapshot.remaining_tokens == 40
        clock.now += 10
        denied = await limiter.acquire(41)
        assert not denied.allowed and denied.limited_by == "tokens"
        assert denied.retry_after == pytest.approx(50.0)
        assert (await limiter.acquire(40)).allowed

    asyncio.run(scenario())


def test_duration_and_retry_after_formats() -> None:
    assert [format_duration(s) for s in (0, 0.25, 1, 59.5, 360, 3661)] == ["0s", "250ms", "1s", "59.5s", "6m0s",
                                                                          "1h1m1s"]
    assert retry_after_headers(2.001) == {"retry-after": "3", "retry-after-ms": "2001"}


def test_fault_script_order_model_scope_and_seeded_random() -> None:
    faults = FaultInjector()
    faults.script(["500", "ok", "drop"])
    faults.script(["timeout"], model="a")
    assert [faults.next_fault(m) for m in ("a", "b", "a", "b", "b")] == ["timeout", "500", None, "drop", None]
    with pytest.raises(ValueError, match="unknown fault kind"):
        faults.script(["explode"])
    one = FaultInjector(0.5, ["500", "drop"], seed=3)
    two = FaultInjector(0.5, ["500", "drop"], seed=3)
    seq = [one.next_fault("m") for _ in range(50)]
    assert seq == [two.next_fault("m") for _ in range(50)]
    assert {None, "500", "drop"} == set(seq)


def test_cli_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_SIM_PORT", "9001")
    monkeypatch.setenv("LLM_SIM_LATENCY", "0.25")
    monkeypatch.setenv("LLM_SIM_FAULT_KINDS", "500,drop")
    settings = settings_from_args(["--latency", "0.5", "--api-key", ""])
    assert settings == SimulatorSettings(port=9001, latency=0.5, fault_kinds=("500", "drop"))
    with pytest.raises(ValueError):
        SimulatorSettings(fault_kinds=("boom",))
