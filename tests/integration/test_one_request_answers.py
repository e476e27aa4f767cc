"""A text agent without tools answers in one direct request: the provider receives exactly what an
Agent run would have sent, and the answer and the cost record are the same. Both APIs of the real
OpenAI and Anthropic models, against the simulator over HTTP."""

from __future__ import annotations

import asyncio

import pytest
from pydantic_ai import Agent as PydanticAgent
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.anthropic import AnthropicProvider
from pydantic_ai.providers.openai import OpenAIProvider

from erp_agents.costs.record import CostRecord
from erp_agents.governed import GovernedModel
from erp_agents.triggers.runner import PYDANTIC_AGENT_NAME, answer_in_one_request
from include.llm_simulator.testing import running_simulator

KEY = "sk-one-request-0123456789abcdef"
INSTRUCTIONS = "You review supplier invoices. Answer in one sentence."
PROMPT = "Is invoice INV-0042 over 10,000 EUR due this week?"


@pytest.fixture(scope="module")
def sim():
    with running_simulator(api_key=KEY) as handle:
        yield handle


def _model(kind: str, sim) -> tuple[GovernedModel, CostRecord]:
    if kind == "openai":
        provider_type, wrapped = "openai", OpenAIChatModel(
            "gpt-4o-mini", provider=OpenAIProvider(base_url=sim.openai_base_url, api_key=KEY))
    else:
        provider_type, wrapped = "anthropic", AnthropicModel(
            "claude-3-5-haiku-latest", provider=AnthropicProvider(base_url=sim.base_url, api_key=KEY))
    record = CostRecord(workflow="wf", agent="a", module="Finance", provider=kind, model=wrapped.model_name)
    return GovernedModel(wrapped, record=record, provider_type=provider_type), record


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_the_direct_request_is_the_one_an_agent_sends(sim, kind):
    settings = {"max_tokens": 64, "temperature": 0.2}

    async def both():
        model, direct_record = _model(kind, sim)
        direct = await answer_in_one_request(model, PROMPT, INSTRUCTIONS, settings)
        model, agent_record = _model(kind, sim)
        agent = PydanticAgent(model, output_type=str, instructions=INSTRUCTIONS, name=PYDANTIC_AGENT_NAME)
        via_agent = (await agent.run(PROMPT, model_settings=settings)).output
        return direct, direct_record, via_agent, agent_record

    sim.reset()
    direct, direct_record, via_agent, agent_record = asyncio.run(both())
    first, second = (entry["request"] for entry in sim.requests())
    assert first == second  # the same body on the wire: messages, instructions, settings
    assert direct == via_agent and direct
    assert (direct_record.calls, direct_record.input_tokens, direct_record.output_tokens, direct_record.cost_usd) == (
        agent_record.calls, agent_record.input_tokens, agent_record.output_tokens, agent_record.cost_usd)
