"""The OpenAI SDK against a real simulator subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest
from pydantic import BaseModel

from sim_expect import OVERHEAD, digest, text_answer, tokens

MODEL = "gpt-4o-mini"
SYSTEM = "You are terse."
WEATHER_TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}, "units": {"type": "string", "enum": ["c", "f"]}},
        "required": ["city"]}}},
    {"type": "function", "function": {"name": "get_time", "description": "Local time", "parameters": {
        "type": "object", "properties": {"tz": {"type": "string"}, "fmt": {"type": "string"}}, "required": ["tz"]}}},
]


def ask(client: openai.OpenAI, text: str, **kwargs):
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]
    return client.chat.completions.create(model=MODEL, messages=messages, **kwargs)


def test_same_prompt_same_answer_different_prompt_different(oai: openai.OpenAI) -> None:
    text = "Hello, world! Review my DAG."
    first, second, other = ask(oai, text), ask(oai, text), ask(oai, text + " Please.")
    expected = text_answer(MODEL, SYSTEM, [{"role": "user", "text": text}], text)
    assert first.choices[0].message.content == expected
    assert second.choices[0].message.content == expected
    assert other.choices[0].message.content != expected
    assert first.choices[0].finish_reason == "stop"
    assert first.usage.prompt_tokens == (OVERHEAD + tokens(SYSTEM)) + (OVERHEAD + tokens(text)) == 18
    assert first.usage.completion_tokens == tokens(expected)
    assert first.usage.total_tokens == 18 + tokens(expected)


def test_usage_counts_parts_and_tool_definitions(oai: openai.OpenAI) -> None:
    parts = [{"type": "text", "text": "Part one."}, {"type": "text", "text": "Part two, done!"}]
    response = oai.chat.completions.create(
        model=MODEL, tools=WEATHER_TOOLS,
        messages=[{"role": "developer", "content": "Rules: be brief."}, {"role": "user", "content": parts}],
    )
    expected = (OVERHEAD + tokens("Rules: be brief.")) + (OVERHEAD + tokens("Part one.\nPart two, done!")) \
        + tokens(json.dumps(WEATHER_TOOLS))
    assert response.usage.prompt_tokens == expected


def test_parallel_tool_calls_then_final_answer_with_results(oai: openai.OpenAI) -> None:
    user = 'Check get_weather({"city": "Paris"}) and also get_time for me'
    messages = [{"role": "user", "content": user}]
    first = oai.chat.completions.create(model=MODEL, messages=messages, tools=WEATHER_TOOLS)
    choice = first.choices[0]
    d1 = digest("", [{"role": "user", "text": user}])
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls] == [
        (f"call_{d1}_0", "get_weather", {"city": "Paris"}),
        (f"call_{d1}_1", "get_time", {"tz": "sim"}),
    ]
    calls = choice.message.tool_calls
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": calls[0].id, "content": json.dumps({"temp_c": 21, "sky": "clear"})},
        {"role": "tool", "tool_call_id": calls[1].id, "content": "12:00"},
    ]
    final = oai.chat.completions.create(model=MODEL, messages=messages, tools=WEATHER_TOOLS)
    normalised = [
        {"role": "user", "text": user},
        {"role": "assistant", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}},
                                             {"name": "get_time", "arguments": {"tz": "sim"}}]},
        {"role": "tool", "tool_results": [{"name": "get_weather", "content": '{"temp_c": 21, "sky": "clear"}'}]},
        {"role": "tool", "tool_results": [{"name": "get_time", "content": "12:00"}]},
    ]
    expected = text_answer(MODEL, "", normalised, user,
                           [("get_weather", '{"sky":"clear","temp_c":21}'), ("get_time", '"12:00"')])
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content == expected
    assert final.usage.prompt_tokens == (
        OVERHEAD + tokens(user)
        + OVERHEAD + tokens(calls[0].function.arguments) + tokens(calls[1].function.arguments)
        + OVERHEAD + tokens('{"temp_c": 21, "sky": "clear"}') + OVERHEAD + tokens("12:00")
        + tokens(json.dumps(WEATHER_TOOLS))
    )


def test_final_result_output_tool(oai: openai.OpenAI) -> None:
    tool = {"type": "function", "function": {"name": "final_result", "parameters": {
        "type": "object", "required": ["verdict"],
        "properties": {"verdict": {"type": "string"}, "score": {"type": "integer"}, "ok": {"type": "boolean"},
                       "tags": {"type": "array", "items": {"type": "string"}}}}}}
    response = oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Review it"}],
                                           tools=[tool], tool_choice="required")
    d = digest("", [{"role": "user", "text": "Review it"}])
    call = response.choices[0].message.tool_calls[0]
    assert response.choices[0].finish_reason == "tool_calls"
    assert call.id == f"call_{d}_0" and call.function.name == "final_result"
    assert json.loads(call.function.arguments) == {"verdict": f"sim-{d[:8]}", "score": 1, "ok": True, "tags": []}


def test_response_format_json_schema(oai: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string"}, "level": {"enum": ["low", "high"]},
                                                "n": {"type": "number"}}, "required": ["title"]}
    response = oai.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Summarise"}],
        response_format={"type": "json_schema", "json_schema": {"name": "S", "schema": schema}},
    )
    d = digest("", [{"role": "user", "text": "Summarise"}])
    assert json.loads(response.choices[0].message.content) == {"title": f"sim-{d[:8]}", "level": "low", "n": 1.0}


def test_max_completion_tokens_truncates(oai: openai.OpenAI) -> None:
    response = ask(oai, "Please review this long text about Airflow", max_completion_tokens=8)
    d = digest(SYSTEM, [{"role": "user", "text": "Please review this long text about Airflow"}])
    assert response.choices[0].finish_reason == "length"
    assert response.choices[0].message.content == f"[{MODEL}#{d}"
    assert response.usage.completion_tokens == 8
    legacy = ask(oai, "Please review this long text about Airflow", max_tokens=3)
    assert legacy.choices[0].message.content == "[gpt-"


def test_sim_echo_returns_message_verbatim(oai: openai.OpenAI) -> None:
    text = "SIM_ECHO  line one\nline two {\"k\": 1}"
    content = ask(oai, text).choices[0].message.content
    assert content == f"[{MODEL}#{digest(SYSTEM, [{'role': 'user', 'text': text}])}] {text}"


def test_streaming_is_rejected(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        ask(oai, "hi", stream=True)
    assert info.value.status_code == 400
    assert info.value.body["message"] == "streaming not supported by the simulator"


def test_missing_key_is_401_in_openai_format(sim) -> None:
    response = httpx.post(sim.openai_base_url + "/chat/completions",
                          json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 401
    assert response.json() == {"error": {"message": "missing api key", "type": "invalid_request_error",
                                         "param": None, "code": "invalid_api_key"}}


def test_models_list(oai: openai.OpenAI) -> None:
    assert "gpt-4o-mini" in [m.id for m in oai.models.list().data]


def test_jsonl_log_has_one_line_per_request(sim, oai: openai.OpenAI) -> None:
    before = Path(sim.log_path).read_text().splitlines()
    ok = ask(oai, "log me")
    with pytest.raises(openai.BadRequestError):
        ask(oai, "log me", stream=True)
    lines = [json.loads(line) for line in Path(sim.log_path).read_text().splitlines()[len(before):]]
    assert len(lines) == 2
    assert [set(entry) for entry in lines] == [{"id", "api", "path", "model", "ts_start", "ts_end", "status",
                                                "request", "response", "usage", "fault", "key_hash", "admitted",
                                                    "tokens_counted", "limited_by"}] * 2
    first, second = lines
    assert (first["api"], first["path"], first["model"], first["status"], first["fault"]) == \
        ("openai", "/v1/chat/completions", MODEL, 200, None)
    assert first["request"]["messages"][1] == {"role": "user", "content": "log me"}
    assert first["response"]["choices"][0]["message"]["content"] == ok.choices[0].message.content
    assert first["usage"] == {"input_tokens": ok.usage.prompt_tokens, "output_tokens": ok.usage.completion_tokens}
    assert first["ts_start"] <= first["ts_end"]
    assert (second["status"], second["request"]["stream"], second["usage"]) == \
        (400, True, {"input_tokens": 0, "output_tokens": 0})
    assert "test-key" not in Path(sim.log_path).read_text()
    assert sim.requests() == lines


class Review(BaseModel):
    verdict: str
    score: int


def test_pydantic_ai_agent_with_tools_and_structured_output(sim) -> None:
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    model = OpenAIChatModel(MODEL, provider=OpenAIProvider(base_url=sim.openai_base_url, api_key="test-key"))
    agent = Agent(model, system_prompt="You help.")

    @agent.tool_plain
    def lookup(key: str) -> dict:
        return {"key": key, "value": 42}

    result = agent.run_sync("Use lookup please")
    assert result.output.endswith('Tool results: lookup={"key":"sim","value":42}')
    structured = Agent(model, output_type=Review).run_sync("Review the DAG")
    d = digest("", [{"role": "user", "text": "Review the DAG"}])
    assert structured.output == Review(verdict=f"sim-{d[:8]}", score=1)
    assert [e["status"] for e in sim.requests()] == [200, 200, 200]
