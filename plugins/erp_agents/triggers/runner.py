"""One agent run: prompt -> pydantic-ai Agent over GovernedModel -> output. Async only, no Airflow state."""

from __future__ import annotations

import logging
from typing import Any

from pydantic_ai import Agent as PydanticAgent
from pydantic_ai.output import NativeOutput, StructuredDict, ToolOutput
from pydantic_ai.settings import ModelSettings
from pydantic_ai.usage import UsageLimits

from erp_agents.costs.record import CostRecord
from erp_agents.governed import GovernedModel, RequestGovernor
from erp_agents.hooks.model_hook import AgentModelHook
from erp_agents.tools.registry import default_registry
from erp_agents.triggers.prompt import render_prompt


def prompt_context(payload: dict[str, Any], run: dict[str, Any], upstream: dict[str, Any]) -> dict[str, Any]:
    """What a prompt template may use: upstream outputs, params and the run's identity."""
    return {
        "agents": {name: {"output": output, "task_id": payload["upstream"].get(name)} for name, output in upstream.items()},
        "params": run.get("params") or {},
        "ds": run.get("ds"),
        "logical_date": run.get("logical_date"),
        "run_id": run.get("run_id"),
        "dag_id": run.get("dag_id"),
        "workflow": payload["workflow"],
        "agent": {k: payload["agent"][k] for k in ("name", "module", "description")},
    }


def model_settings(llm_config: dict[str, Any], provider_type: str) -> ModelSettings:
    settings: ModelSettings = {}
    for key in ("temperature", "max_tokens", "top_p"):
        if llm_config.get(key) is not None:
            settings[key] = llm_config[key]  # type: ignore[literal-required]
    if llm_config.get("prompt_cache"):
        settings["cache"] = llm_config["prompt_cache"]
    if provider_type == "anthropic":
        # Anthropic requires max_tokens; a bounded default also keeps the call a plain request.
        settings.setdefault("max_tokens", ANTHROPIC_DEFAULT_MAX_TOKENS)
    return settings


ANTHROPIC_DEFAULT_MAX_TOKENS = 4096


def _output_type(agent: dict[str, Any], provider: dict[str, Any]) -> Any:
    """str, or the agent's output_schema through the provider's native structured output or a tool."""
    schema = agent.get("output_schema")
    if not schema:
        return str
    structured = StructuredDict(schema, name=f"{agent['name']}_output")
    return NativeOutput(structured) if provider["structured_output"] == "native" else ToolOutput(structured)


async def run_agent(
    payload: dict[str, Any],
    run: dict[str, Any],
    upstream: dict[str, Any],
    record: CostRecord,
    *,
    log: logging.Logger | Any,
    governor: RequestGovernor | None = None,
) -> Any:
    """Run the agent to its final answer; raises on failure (the caller classifies)."""
    agent = payload["agent"]
    prompt = render_prompt(agent["prompt_template"], prompt_context(payload, run, upstream), agent=agent["name"])
    tools = default_registry().build(agent.get("tools") or [])
    tool_names = {tool.name for tool in tools}
    log.info("Agent %s: %s via %s, tools: %s", agent["name"], agent["llm_config"]["model"], payload["provider_name"],
             ", ".join(sorted(tool_names)) or "none")
    async with AgentModelHook(payload["provider"]).model(agent["llm_config"]["model"]) as provider_model:
        model = GovernedModel(
            provider_model,
            record=record,
            provider_type=payload["provider"]["type"],
            price_overrides=payload.get("price_overrides"),
            governor=governor,
        )
        pydantic_agent: PydanticAgent[None, Any] = PydanticAgent(
            model,
            output_type=_output_type(agent, payload["provider"]),
            instructions=agent.get("system_prompt"),
            tools=tools,
            name=agent["name"],
        )
        result = await pydantic_agent.run(
            prompt,
            model_settings=model_settings(agent["llm_config"], payload["provider"]["type"]),
            usage_limits=UsageLimits(request_limit=int(payload.get("max_tool_rounds", 8)) + 1),
        )
    record.tool_calls = sum(
        1
        for message in result.all_messages()
        for part in getattr(message, "parts", [])
        if part.part_kind == "tool-call" and part.tool_name in tool_names
    )
    return result.output
