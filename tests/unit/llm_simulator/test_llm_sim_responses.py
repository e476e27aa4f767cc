"""The OpenAI SDK's Responses API (``client.responses``) against a real simulator subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest
from pydantic import BaseModel

from sim_expect import OVERHEAD, digest, text_answer, tokens

MODEL = "gpt-4o-mini"
INSTRUCTIONS = "You are terse."
TOOLS = [
    {"type": "function", "name": "get_weather", "description": "Weather for a city", "strict": False, "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}, "units": {"type": "string", "enum": ["c", "f"]}},
        "required": ["city"]}},
    {"type": "function", "name": "get_time", "description": "Local time", "strict": False, "parameters": {
        "type": "object", "properties": {"tz": {"type": "string"}, "fmt": {"type": "string"}}, "required": ["tz"]}},
]
HELLO = [{"role": "user", "content": "hello"}]


def usage_of(response) -> dict:
    return response.usage.model_dump(exclude_none=True)


def test_text_answer_shape_usage_and_determinism(oai: openai.OpenAI) -> None:
    text = "Hello, world! Review my DAG."
    first = oai.responses.create(model=MODEL, instructions=INSTRUCTIONS, input=text)
    same = oai.responses.create(model=MODEL, instructions=INSTRUCTIONS,
                                input=[{"role": "user", "content": [{"type": "input_text", "text": text}]}])
    expected = text_answer(MODEL, INSTRUCTIONS, [{"role": "user", "text": text}], text)
    assert first.output_text == same.output_text == expected
    assert (first.object, first.status, first.model, first.error, first.incomplete_details) == \
        ("response", "completed", MODEL, None, None)
    assert first.id.startswith("resp_") and first.id != same.id
    assert first.instructions == INSTRUCTIONS and first.tools == [] and first.tool_choice == "auto"
    [message] = first.output
    assert (message.type, message.role, message.status) == ("message", "assistant", "completed")
    assert [(c.type, c.text, c.annotations) for c in message.content] == [("output_text", expected, [])]
    prompt = (OVERHEAD + tokens(INSTRUCTIONS)) + (OVERHEAD + tokens(text))
    assert usage_of(first) == {
        "input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": tokens(expected), "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + tokens(expected),
    }
    other = oai.responses.create(model=MODEL, instructions=INSTRUCTIONS, input=text + " Please.")
    assert other.output_text != expected


def test_same_answer_as_chat_completions(oai: openai.OpenAI) -> None:
    """Both OpenAI dialects share the answer rules: instructions count as the system prompt."""
    text = "Summarise the nightly run"
    chat = oai.chat.completions.create(model=MODEL, messages=[{"role": "system", "content": INSTRUCTIONS},
                                                              {"role": "user", "content": text}])
    response = oai.responses.create(model=MODEL, instructions=INSTRUCTIONS, input=text)
    developer = oai.responses.create(model=MODEL, input=[{"role": "developer", "content": INSTRUCTIONS},
                                                         {"role": "user", "content": text}])
    assert response.output_text == developer.output_text == chat.choices[0].message.content
    assert response.usage.input_tokens == developer.usage.input_tokens == chat.usage.prompt_tokens


def test_parallel_function_calls_then_final_answer_with_outputs(oai: openai.OpenAI) -> None:
    user = 'Check get_weather({"city": "Paris"}) and also get_time for me'
    first = oai.responses.create(model=MODEL, input=[{"role": "user", "content": user}], tools=TOOLS)
    d1 = digest("", [{"role": "user", "text": user}])
    assert first.status == "completed" and first.output_text == ""
    calls = first.output
    assert [(c.type, c.call_id, c.name, json.loads(c.arguments), c.status) for c in calls] == [
        ("function_call", f"call_{d1}_0", "get_weather", {"city": "Paris"}, "completed"),
        ("function_call", f"call_{d1}_1", "get_time", {"tz": "sim"}, "completed"),
    ]
    assert len({c.id for c in calls}) == 2 and all(c.id.startswith("fc_") for c in calls)
    assert first.usage.output_tokens == sum(tokens(c.name) + tokens(c.arguments) for c in calls)
    assert [t.name for t in first.tools] == ["get_weather", "get_time"]

    weather = json.dumps({"temp_c": 21, "sky": "clear"})
    history = [
        {"role": "user", "content": user},
        *(c.model_dump(exclude_none=True) for c in calls),
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": weather},
        {"type": "function_call_output", "call_id": calls[1].call_id,
         "output": [{"type": "input_text", "text": "12:00"}]},
    ]
    final = oai.responses.create(model=MODEL, input=history, tools=TOOLS)
    # The same normalised conversation as a Chat Completions tool round (one assistant turn, one message per result).
    normalised = [
        {"role": "user", "text": user},
        {"role": "assistant", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}},
                                             {"name": "get_time", "arguments": {"tz": "sim"}}]},
        {"role": "tool", "tool_results": [{"name": "get_weather", "content": weather}]},
        {"role": "tool", "tool_results": [{"name": "get_time", "content": "12:00"}]},
    ]
    expected = text_answer(MODEL, "", normalised, user,
                           [("get_weather", '{"sky":"clear","temp_c":21}'), ("get_time", '"12:00"')])
    assert final.output_text == expected and final.output[0].type == "message"
    assert final.usage.input_tokens == (
        OVERHEAD + tokens(user)
        + OVERHEAD + tokens(calls[0].arguments) + tokens(calls[1].arguments)
        + OVERHEAD + tokens(weather) + OVERHEAD + tokens("12:00")
        + tokens(json.dumps(TOOLS))
    )


def test_tool_choice_forms(oai: openai.OpenAI) -> None:
    def called(**kwargs) -> list[str]:
        response = oai.responses.create(model=MODEL, input="Check get_weather please", tools=TOOLS, **kwargs)
        return [item.name for item in response.output if item.type == "function_call"]

    assert called() == ["get_weather"]
    assert called(tool_choice="none") == []
    assert called(tool_choice={"type": "function", "name": "get_time"}) == ["get_time"]
    assert called(tool_choice={"type": "allowed_tools", "mode": "required",
                               "tools": [{"type": "function", "name": "get_time"}]}) == ["get_time"]
    assert called(tool_choice={"type": "allowed_tools", "mode": "auto",
                               "tools": [{"type": "function", "name": "get_time"}]}) == []
    hosted = oai.responses.create(model=MODEL, input="Check web_search please",
                                  tools=[{"type": "web_search"}, *TOOLS], tool_choice="required")
    assert [item.name for item in hosted.output] == ["get_weather"]  # hosted tools are offered, never called


class Verdict(BaseModel):
    title: str
    level: str
    n: float


def test_structured_output_text_format_json_schema(oai: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string"}, "level": {"enum": ["low", "high"]},
                                                "n": {"type": "number"}}, "required": ["title"]}
    response = oai.responses.create(
        model=MODEL, input="Summarise",
        text={"format": {"type": "json_schema", "name": "S", "schema": schema, "strict": False}},
    )
    d = digest("", [{"role": "user", "text": "Summarise"}])
    assert json.loads(response.output_text) == {"title": f"sim-{d[:8]}", "level": "low", "n": 1.0}
    assert response.text.format.type == "json_schema" and response.text.format.name == "S"
    parsed = oai.responses.parse(model=MODEL, input="Summarise", text_format=Verdict)  # the SDK's own parsing
    assert parsed.output_parsed == Verdict(title=f"sim-{d[:8]}", level=f"sim-{d[:8]}", n=1.0)
    plain = oai.responses.create(model=MODEL, input="Summarise as JSON", text={"format": {"type": "json_object"}})
    assert json.loads(plain.output_text)["answer"].startswith(f"[{MODEL}#")


def test_max_output_tokens_truncates_as_incomplete(oai: openai.OpenAI) -> None:
    text = "Please review this long text about Airflow"
    response = oai.responses.create(model=MODEL, instructions=INSTRUCTIONS, input=text, max_output_tokens=8)
    d = digest(INSTRUCTIONS, [{"role": "user", "text": text}])
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
    assert response.output[0].status == "incomplete"
    assert response.output_text == f"[{MODEL}#{d}"
    assert response.usage.output_tokens == 8 and response.max_output_tokens == 8


def test_assistant_history_and_system_messages(oai: openai.OpenAI) -> None:
    history = [
        {"role": "system", "content": "Rules: be brief."},
        {"role": "user", "content": "first question"},
        {"type": "message", "role": "assistant", "status": "completed", "id": "msg_1",
         "content": [{"type": "output_text", "text": "first answer", "annotations": []}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"role": "user", "content": "second question"},
    ]
    response = oai.responses.create(model=MODEL, instructions=INSTRUCTIONS, input=history)
    normalised = [{"role": "user", "text": "first question"}, {"role": "assistant", "text": "first answer"},
                  {"role": "user", "text": "second question"}]
    system = INSTRUCTIONS + "\n\nRules: be brief."
    assert response.output_text == text_answer(MODEL, system, normalised, "second question")
    assert response.usage.input_tokens == (OVERHEAD + tokens(INSTRUCTIONS) + OVERHEAD + tokens("Rules: be brief.")
                                           + 3 * OVERHEAD + tokens("first question first answer second question"))


@pytest.mark.parametrize(("extra", "message"), [
    ({"stream": True}, "streaming not supported by the simulator"),
    ({"previous_response_id": "resp_1"},
     "previous_response_id not supported by the simulator (it stores no responses)"),
    ({"background": True}, "background responses not supported by the simulator"),
    ({"max_output_tokens": 0}, "max_output_tokens must be a positive integer"),
    ({"tool_choice": {"type": "mcp", "server_label": "x"}}, "unsupported tool_choice"),
])
def test_unsupported_requests_are_400_in_openai_format(sim, extra, message) -> None:
    response = httpx.post(sim.openai_base_url + "/responses", headers={"authorization": "Bearer test-key"},
                          json={"model": MODEL, "input": "hi", **extra})
    assert response.status_code == 400
    assert response.json() == {"error": {"message": message, "type": "invalid_request_error", "param": None,
                                         "code": None}}


def test_missing_key_is_401_and_sdk_errors_map(sim, oai: openai.OpenAI) -> None:
    response = httpx.post(sim.openai_base_url + "/responses", json={"model": MODEL, "input": "hi"})
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.BadRequestError) as info:
        oai.responses.create(model=MODEL, input=[])
    assert info.value.body["message"] == "input must be a string or a non-empty list of items"


@pytest.mark.parametrize(("kind", "error", "status"), [
    ("500", openai.InternalServerError, 500),
    ("429", openai.RateLimitError, 429),
    ("malformed", json.JSONDecodeError, 200),
    ("drop", openai.APIConnectionError, None),
])
def test_scripted_faults(sim, wait_for_requests, kind, error, status) -> None:
    client = openai.OpenAI(base_url=sim.openai_base_url, api_key="test-key", max_retries=0, timeout=2.0)
    sim.script([kind])
    with pytest.raises(error):
        client.responses.create(model=MODEL, input=HELLO)
    assert client.responses.create(model=MODEL, input=HELLO).status == "completed"
    entries = sorted(wait_for_requests(sim, 2), key=lambda e: e["id"])
    assert [(e["path"], e["fault"], e["status"]) for e in entries] == \
        [("/v1/responses", kind, status), ("/v1/responses", None, 200)]


def test_rate_limit_headers_and_429(limited) -> None:
    client = openai.OpenAI(base_url=limited.openai_base_url, api_key="test-key", max_retries=0)
    remaining = []
    for _ in range(3):
        raw = client.responses.with_raw_response.create(model="m", input=HELLO)
        remaining.append(raw.headers["x-ratelimit-remaining-requests"])
    assert remaining == ["2", "1", "0"]
    with pytest.raises(openai.RateLimitError) as info:
        client.responses.create(model="m", input=HELLO)
    assert int(info.value.response.headers["retry-after"]) > 0
    assert info.value.body["code"] == "rate_limit_exceeded"


def test_request_is_logged(sim, oai: openai.OpenAI) -> None:
    before = Path(sim.log_path).read_text().splitlines()
    response = oai.responses.create(model=MODEL, instructions=INSTRUCTIONS, input="log me", max_output_tokens=50)
    [entry] = [json.loads(line) for line in Path(sim.log_path).read_text().splitlines()[len(before):]]
    assert (entry["api"], entry["path"], entry["model"], entry["status"], entry["fault"]) == \
        ("openai", "/v1/responses", MODEL, 200, None)
    assert entry["request"] == {"model": MODEL, "instructions": INSTRUCTIONS, "input": "log me",
                                "max_output_tokens": 50}
    assert entry["response"]["output"][0]["content"][0]["text"] == response.output_text
    assert entry["usage"] == {"input_tokens": response.usage.input_tokens,
                              "output_tokens": response.usage.output_tokens}
    assert "test-key" not in Path(sim.log_path).read_text()


class Review(BaseModel):
    verdict: str
    score: int


def test_pydantic_ai_responses_model_tools_and_structured_output(sim) -> None:
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIResponsesModel
    from pydantic_ai.output import NativeOutput
    from pydantic_ai.providers.openai import OpenAIProvider

    model = OpenAIResponsesModel(MODEL, provider=OpenAIProvider(base_url=sim.openai_base_url, api_key="test-key"))
    agent = Agent(model, instructions="You help.")

    @agent.tool_plain
    def lookup(key: str) -> dict:
        return {"key": key, "value": 42}

    result = agent.run_sync("Use lookup please", model_settings={"max_tokens": 300})
    assert result.output.endswith('Tool results: lookup={"key":"sim","value":42}')
    tool_round, answer = sim.requests()
    assert tool_round["request"]["instructions"] == "You help." and tool_round["request"]["max_output_tokens"] == 300
    assert [t["name"] for t in tool_round["request"]["tools"]] == ["lookup"]
    assert [item.get("type") for item in answer["request"]["input"]] == [None, "function_call", "function_call_output"]
    assert result.usage.input_tokens == sum(e["usage"]["input_tokens"] for e in (tool_round, answer))
    assert result.usage.output_tokens == sum(e["usage"]["output_tokens"] for e in (tool_round, answer))

    d = digest("", [{"role": "user", "text": "Review the DAG"}])
    native = Agent(model, output_type=NativeOutput(Review)).run_sync("Review the DAG")
    assert native.output == Review(verdict=f"sim-{d[:8]}", score=1)
    assert sim.requests()[-1]["request"]["text"]["format"]["type"] == "json_schema"
    tool_output = Agent(model, output_type=Review).run_sync("Review the DAG")
    assert tool_output.output == Review(verdict=f"sim-{d[:8]}", score=1)
    assert [t["name"] for t in sim.requests()[-1]["request"]["tools"]] == ["final_result"]
    assert {e["path"] for e in sim.requests()} == {"/v1/responses"}
