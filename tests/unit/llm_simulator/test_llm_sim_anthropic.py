"""The Anthropic SDK against a real simulator subprocess."""

from __future__ import annotations

import json

import anthropic
import httpx

from sim_expect import OVERHEAD, digest, text_answer, tokens

MODEL = "claude-sim"
SYSTEM = "You review Airflow DAGs."
TOOLS = [
    {"name": "get_weather", "description": "Weather", "input_schema": {
        "type": "object", "properties": {"city": {"type": "string"}, "units": {"enum": ["c", "f"]}},
        "required": ["city", "units"]}},
    {"name": "list_dags", "description": "DAG ids", "input_schema": {
        "type": "object", "properties": {"limit": {"type": "integer"}, "paused": {"type": "boolean"}},
        "required": ["limit", "paused"]}},
]


def test_text_answer_usage_and_determinism(ant: anthropic.Anthropic) -> None:
    text = "Review dag_a, please: is it idempotent?"
    first = ant.messages.create(model=MODEL, max_tokens=200, system=SYSTEM,
                                messages=[{"role": "user", "content": text}])
    again = ant.messages.create(model=MODEL, max_tokens=200, system=[{"type": "text", "text": SYSTEM}],
                                messages=[{"role": "user", "content": [{"type": "text", "text": text}]}])
    expected = text_answer(MODEL, SYSTEM, [{"role": "user", "text": text}], text)
    assert first.content[0].type == "text" and first.content[0].text == expected
    assert again.content[0].text == expected
    assert first.stop_reason == "end_turn" and first.role == "assistant" and first.type == "message"
    assert first.usage.input_tokens == OVERHEAD + tokens(SYSTEM) + OVERHEAD + tokens(text)
    assert first.usage.output_tokens == tokens(expected)
    other = ant.messages.create(model=MODEL, max_tokens=200, system=SYSTEM,
                                messages=[{"role": "user", "content": text + "!"}])
    assert other.content[0].text != expected


def test_parallel_tool_use_round_trip(ant: anthropic.Anthropic) -> None:
    user = "Run list_dags and get_weather now"
    messages = [{"role": "user", "content": user}]
    first = ant.messages.create(model=MODEL, max_tokens=500, tools=TOOLS, messages=messages)
    d1 = digest("", [{"role": "user", "text": user}])
    assert first.stop_reason == "tool_use"
    assert [(b.type, b.id, b.name, b.input) for b in first.content] == [
        ("tool_use", f"toolu_{d1}_0", "list_dags", {"limit": 1, "paused": True}),
        ("tool_use", f"toolu_{d1}_1", "get_weather", {"city": "sim", "units": "c"}),
    ]
    assert first.usage.output_tokens == sum(tokens(b.name) + tokens(json.dumps(b.input)) for b in first.content)
    results = [
        {"type": "tool_result", "tool_use_id": first.content[0].id, "content": '["dag_a", "dag_b"]'},
        {"type": "tool_result", "tool_use_id": first.content[1].id,
         "content": [{"type": "text", "text": "sunny"}]},
    ]
    messages += [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
                 {"role": "user", "content": results}]
    final = ant.messages.create(model=MODEL, max_tokens=500, tools=TOOLS, messages=messages)
    normalised = [
        {"role": "user", "text": user},
        {"role": "assistant", "tool_calls": [{"name": "list_dags", "arguments": {"limit": 1, "paused": True}},
                                             {"name": "get_weather", "arguments": {"city": "sim", "units": "c"}}]},
        {"role": "user", "tool_results": [{"name": "list_dags", "content": '["dag_a", "dag_b"]'},
                                          {"name": "get_weather", "content": "sunny"}]},
    ]
    expected = text_answer(MODEL, "", normalised, user,
                           [("list_dags", '["dag_a","dag_b"]'), ("get_weather", '"sunny"')])
    assert final.stop_reason == "end_turn"
    assert [b.text for b in final.content] == [expected]
    assert final.usage.input_tokens == (
        OVERHEAD + tokens(user)
        + OVERHEAD + tokens(json.dumps({"limit": 1, "paused": True})) + tokens(json.dumps({"city": "sim", "units": "c"}))
        + OVERHEAD + tokens('["dag_a", "dag_b"]') + tokens("sunny")
        + tokens(json.dumps(TOOLS))
    )


def test_final_result_output_tool(ant: anthropic.Anthropic) -> None:
    tool = {"name": "final_result_Review", "input_schema": {
        "type": "object", "properties": {"summary": {"type": "string"}, "risk": {"enum": ["low", "high"]},
                                         "count": {"type": "integer", "minimum": 3}}}}
    response = ant.messages.create(model=MODEL, max_tokens=100, tools=[tool], tool_choice={"type": "any"},
                                   messages=[{"role": "user", "content": "Assess"}])
    d = digest("", [{"role": "user", "text": "Assess"}])
    assert response.stop_reason == "tool_use"
    assert [(b.id, b.name, b.input) for b in response.content] == [
        (f"toolu_{d}_0", "final_result_Review", {"summary": f"sim-{d[:8]}", "risk": "low", "count": 3})]


def test_max_tokens_stop_reason(ant: anthropic.Anthropic) -> None:
    response = ant.messages.create(model=MODEL, max_tokens=4, messages=[{"role": "user", "content": "long answer"}])
    assert response.stop_reason == "max_tokens"
    assert response.content[0].text == "[claude-sim"
    assert response.usage.output_tokens == 4


def test_missing_max_tokens_and_streaming_are_400(sim) -> None:
    headers = {"x-api-key": "test-key", "anthropic-version": "2023-06-01"}
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    response = httpx.post(sim.base_url + "/v1/messages", json=body, headers=headers)
    assert response.status_code == 400
    assert response.json() == {"type": "error", "error": {"type": "invalid_request_error",
                                                          "message": "max_tokens: Field required"}}
    streaming = httpx.post(sim.base_url + "/v1/messages", json={**body, "max_tokens": 5, "stream": True},
                           headers=headers)
    assert streaming.status_code == 400
    assert streaming.json()["error"]["message"] == "streaming not supported by the simulator"


def test_missing_key_is_401_in_anthropic_format(sim) -> None:
    response = httpx.post(sim.base_url + "/v1/messages", headers={"anthropic-version": "2023-06-01"},
                          json={"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 401
    assert response.json() == {"type": "error", "error": {"type": "authentication_error", "message": "missing api key"}}


def test_request_is_logged_as_anthropic(sim, ant: anthropic.Anthropic) -> None:
    response = ant.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "log"}])
    (entry,) = sim.requests()
    assert (entry["api"], entry["path"], entry["model"], entry["status"]) == ("anthropic", "/v1/messages", MODEL, 200)
    assert entry["response"]["id"] == response.id
    assert entry["usage"] == {"input_tokens": response.usage.input_tokens, "output_tokens": response.usage.output_tokens}


def test_pydantic_ai_anthropic_agent(sim) -> None:
    from pydantic import BaseModel
    from pydantic_ai import Agent
    from pydantic_ai.models.anthropic import AnthropicModel
    from pydantic_ai.providers.anthropic import AnthropicProvider

    class Verdict(BaseModel):
        ok: bool
        reason: str

    model = AnthropicModel(MODEL, provider=AnthropicProvider(base_url=sim.base_url, api_key="test-key"),
                           settings={"max_tokens": 1024})
    agent = Agent(model, output_type=Verdict)

    @agent.tool_plain
    def check_dag(dag_id: str) -> str:
        return f"{dag_id}: 3 tasks"

    result = agent.run_sync('Please check_dag({"dag_id": "etl"}) then decide')
    assert result.output.ok is True and result.output.reason.startswith("sim-")
    entries = sim.requests()
    assert [e["response"]["stop_reason"] for e in entries] == ["tool_use", "tool_use"]
    assert entries[0]["response"]["content"][0]["input"] == {"dag_id": "etl"}
    assert entries[1]["response"]["content"][0]["name"] == "final_result"
