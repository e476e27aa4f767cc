"""GovernedModel: every request is permitted first and then settled or released, never neither."""

from __future__ import annotations

import asyncio

import pytest
from pydantic_ai import Agent
from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import FunctionModel
from pydantic_ai.usage import RequestUsage

from erp_agents.costs.record import CostRecord
from erp_agents.costs.pricing import UnknownPriceError
from erp_agents.governed import GovernedModel

PRICES = {"fn": {"input": 0.01, "output": 0.02}}


class RecordingGovernor:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.estimates: list = []

    async def acquire(self, estimate):
        self.estimates.append(estimate)
        self.calls.append(("acquire", estimate.max_output_tokens))
        return len(self.calls)

    async def settle(self, permit, cost):
        self.calls.append(("settle", (permit, cost.input_tokens, cost.output_tokens)))

    async def release(self, permit, error):
        self.calls.append(("release", (permit, type(error).__name__)))


def _record() -> CostRecord:
    return CostRecord(workflow="w", agent="a", module="M", provider="p", model="fn")


def test_each_round_is_acquired_then_settled_and_priced():
    def answer(messages, info):
        if len(messages) == 1:
            return ModelResponse(parts=[ToolCallPart("ping", {})], usage=RequestUsage(input_tokens=10, output_tokens=2))
        return ModelResponse(parts=[TextPart("done")], usage=RequestUsage(input_tokens=20, output_tokens=3))

    governor, record = RecordingGovernor(), _record()
    model = GovernedModel(FunctionModel(answer, model_name="fn"), record=record, provider_type="custom",
                          price_overrides=PRICES, governor=governor, priority=7)
    agent = Agent(model)

    @agent.tool_plain
    def ping() -> str:
        return "pong"

    result = asyncio.run(agent.run("go", model_settings={"max_tokens": 50}))
    assert result.output == "done"
    assert governor.calls == [("acquire", 50), ("settle", (1, 10, 2)), ("acquire", 50), ("settle", (3, 20, 3))]
    assert (record.calls, record.input_tokens, record.output_tokens) == (2, 30, 5)
    assert record.cost_usd == pytest.approx((30 * 0.01 + 5 * 0.02) / 1000)
    first, second = governor.estimates
    assert (first.workflow, first.agent, first.module, first.provider_name, first.model) == ("w", "a", "M", "p", "fn")
    assert (first.call_number, second.call_number) == (1, 2)
    assert first.priority == 7 and first.prompt_tokens >= 1 and second.message_count == 3


def test_an_unpriced_model_is_refused_before_any_request():
    calls = []
    model = FunctionModel(lambda m, i: calls.append(1) or ModelResponse(parts=[TextPart("x")]), model_name="house-7b")
    with pytest.raises(UnknownPriceError, match="no price for model 'house-7b'"):
        GovernedModel(model, record=_record(), provider_type="custom")
    assert calls == []


def test_a_failed_request_releases_its_permit():
    def boom(messages, info):
        raise ConnectionError("reset by peer")

    governor, record = RecordingGovernor(), _record()
    model = GovernedModel(FunctionModel(boom, model_name="fn"), record=record, provider_type="custom",
                          price_overrides=PRICES, governor=governor)
    with pytest.raises(ConnectionError):
        asyncio.run(Agent(model).run("go"))
    assert governor.calls == [("acquire", None), ("release", (1, "ConnectionError"))]
    assert (record.calls, record.failed_calls) == (0, 1)


def test_streaming_is_refused():
    model = GovernedModel(FunctionModel(lambda m, i: ModelResponse(parts=[TextPart("x")]), model_name="fn"),
                          record=_record(), provider_type="custom", price_overrides=PRICES)

    async def stream():
        async with Agent(model).run_stream("go") as run:
            return await run.get_output()

    with pytest.raises(Exception, match="streaming requests are not supported"):
        asyncio.run(stream())
