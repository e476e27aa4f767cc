"""One agent run: prompt -> pydantic-ai Agent over GovernedModel -> output. Async only, no Airflow state."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from pydantic_ai import Agent as PydanticAgent
from pydantic_ai.direct import model_request
from pydantic_ai.exceptions import UnexpectedModelBehavior
from pydantic_ai.messages import ModelRequest, TextPart, UserPromptPart
from pydantic_ai.output import NativeOutput, StructuredDict, ToolOutput
from pydantic_ai.settings import ModelSettings
from pydantic_ai.usage import UsageLimits

from erp_agents.contracts import AgentInvocation, RunContext
from erp_agents.costs.record import CostRecord
from erp_agents.exceptions import AgentTimeoutError
from erp_agents.governance import DEFAULT_MAX_OUTPUT_TOKENS, governor_for
from erp_agents.governed import GovernedModel, RequestGovernor
from erp_agents.spec.models import Agent, LLMConfig, ProviderConfig
from erp_agents.hooks.model_hook import AgentModelHook
from erp_agents.tools.registry import default_registry
from erp_agents.triggers.prompt import render_prompt


def prompt_context(invocation: AgentInvocation, run: RunContext, upstream: dict[str, Any]) -> dict[str, Any]:
    """What a prompt template may use: upstream outputs, params and the run's identity."""
    agent = invocation.agent
    return {
        # An upstream that failed (on_upstream_failure: run) has output None and missing true.
        "agents": {
            name: {"output": output, "missing": output is None, "task_id": invocation.upstream.get(name)}
            for name, output in upstream.items()
        },
        "params": run.params,
        "ds": run.ds,
        "logical_date": run.logical_date,
        "run_id": run.run_id,
        "dag_id": run.dag_id,
        "workflow": invocation.workflow,
        "agent": {"name": agent.name, "module": agent.module, "description": agent.description},
    }


def model_settings(llm_config: LLMConfig, provider_type: str) -> ModelSettings:
    settings: ModelSettings = {}
    if llm_config.temperature is not None:
        settings["temperature"] = llm_config.temperature
    if llm_config.max_tokens is not None:
        settings["max_tokens"] = llm_config.max_tokens
    if llm_config.top_p is not None:
        settings["top_p"] = llm_config.top_p
    if llm_config.prompt_cache:
        settings["cache"] = llm_config.prompt_cache
    # Always bounded: Anthropic requires it, and the limiter and the ledger reserve this worst case.
    settings.setdefault("max_tokens", DEFAULT_MAX_OUTPUT_TOKENS)
    return settings


PYDANTIC_AGENT_NAME = "erp_agent"


def _output_type(agent: Agent, provider: ProviderConfig) -> Any:
    """str, or the agent's output_schema through the provider's native structured output or a tool."""
    if not agent.output_schema:
        return str
    structured = StructuredDict(agent.output_schema, name=f"{agent.name}_output")
    return NativeOutput(structured) if provider.output_mode() == "native" else ToolOutput(structured)


async def run_agent(
    invocation: AgentInvocation,
    run: RunContext,
    upstream: dict[str, Any],
    record: CostRecord,
    *,
    log: logging.Logger | Any,
    governor: RequestGovernor | None = None,
    prompt_out: list[str] | None = None,
    extra_context: dict[str, Any] | None = None,
    call_base: int = 0,
) -> Any:
    """Run the agent to its final answer within its ``timeout``; raises on failure (the caller classifies).

    The timeout bounds everything: each call, retry, limiter wait and tool round. When it fires, the
    request in flight is cancelled, which releases its budget reservation and limiter lease.
    """
    timeout, what = _time_left(invocation, run)
    deadline = time.monotonic() + timeout
    if governor is None:
        governor = governor_for(invocation, run, record, deadline=deadline, call_base=call_base)
    try:
        async with asyncio.timeout(timeout):
            return await _run_agent(invocation, run, upstream, record, log=log, governor=governor, deadline=deadline,
                                    prompt_out=prompt_out, extra_context=extra_context)
    except TimeoutError:
        raise AgentTimeoutError(
            f"agent {invocation.agent.name} reached {what} after {record.calls} call(s), "
            f"{record.retries} retries, {record.limiter_wait_s:.1f} s limiter wait"
        ) from None


def _time_left(invocation: AgentInvocation, run: RunContext) -> tuple[float, str]:
    """Seconds this agent may still run: its own timeout, or less when the workflow's timeout is nearer."""
    own = invocation.agent.timeout
    run_left = run.seconds_left(invocation.workflow_timeout_s)
    if run_left is None or run_left >= own:
        return own, f"its timeout of {own:g} s"
    return max(run_left, 0.001), f"the workflow timeout of {invocation.workflow_timeout_s:g} s"


async def answer_in_one_request(model: GovernedModel, prompt: str, instructions: str | None,
                                settings: ModelSettings) -> str:
    """A text answer with no tools is one model request: pydantic-ai's direct API, not an Agent run.

    The agent graph (run context, capabilities, tool manager, output processing) is more than half
    of an agent's CPU in the triggerer's loop when it has nothing to decide between tools and an
    answer: 6.2 ms against 2.5 ms a request, for 1,000 at once. The request is the one an Agent
    sends (same instructions, prompt and settings) and goes through the same GovernedModel: retries,
    limits, budget and cost record. The answer is its text parts joined, as an Agent's ``str``
    output; an answer with no text is a failure at once, where an Agent would ask again once."""
    request = ModelRequest(parts=[UserPromptPart(prompt)], instructions=instructions)
    response = await model_request(model, [request], model_settings=settings)
    text = "".join(part.content for part in response.parts if isinstance(part, TextPart))
    if not text:
        raise UnexpectedModelBehavior(f"{model.model_name} answered with no text")
    return text


def announce(invocation: AgentInvocation, tool_names: set[str], log: logging.Logger | Any, items: int = 0) -> None:
    """The agent's one start line in its task log: model, provider, tools (and items of a chunk)."""
    log.info("Agent %s: %s via %s, tools: %s%s", invocation.agent.name, invocation.model, invocation.provider_name,
             ", ".join(sorted(tool_names)) or "none", f", {items} items" if items else "")


async def _run_agent(
    invocation: AgentInvocation,
    run: RunContext,
    upstream: dict[str, Any],
    record: CostRecord,
    *,
    log: logging.Logger | Any,
    governor: RequestGovernor,
    deadline: float,
    prompt_out: list[str] | None,
    extra_context: dict[str, Any] | None = None,
) -> Any:
    agent, provider = invocation.agent, invocation.provider
    context = prompt_context(invocation, run, upstream)
    if extra_context:
        context.update(extra_context)  # a fan-out item: {{ item }} and {{ item_index }}
    prompt = render_prompt(agent.prompt_template, context, agent=agent.name)
    if prompt_out is not None:
        prompt_out.append(prompt)
    tools = default_registry().build(agent.tools)
    tool_names = {tool.name for tool in tools}
    if extra_context is None:  # a fan-out chunk says it once for all its items (``run_chunk``)
        announce(invocation, tool_names, log)
    hook = AgentModelHook(provider, conn_id=agent.llm_config.conn_id)  # the agent's connection, if set
    async with hook.model(invocation.model) as provider_model:
        model = GovernedModel(
            provider_model,
            record=record,
            provider_type=provider.type,
            price_overrides=invocation.price_table(),
            governor=governor,
            priority=agent.priority,
            retry_policy=invocation.retry_policy,
            deadline=deadline,
            log=log,
        )
        settings = model_settings(agent.llm_config, provider.type)
        if not tools and not agent.output_schema:
            return await answer_in_one_request(model, prompt, agent.system_prompt, settings)
        pydantic_agent: PydanticAgent[None, Any] = PydanticAgent(
            model,
            output_type=_output_type(agent, provider),
            instructions=agent.system_prompt,
            tools=tools,
            # One name for all: pydantic-ai builds its run graph once per agent name (an LRU of 128), so
            # 500 agents with 500 names rebuilt it on every run. Our logs and records name the agent.
            name=PYDANTIC_AGENT_NAME,
        )
        result = await pydantic_agent.run(
            prompt,
            model_settings=settings,
            usage_limits=UsageLimits(request_limit=invocation.max_tool_rounds + 1),
        )
    record.tool_calls = sum(
        1
        for message in result.all_messages()
        for part in message.parts
        if part.part_kind == "tool-call" and part.tool_name in tool_names
    )
    return result.output
