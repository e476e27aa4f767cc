"""Example custom model provider: ``dry_run``, a pydantic-ai model that never leaves the machine.

Useful to rehearse a workflow (prompts, dependencies, tools, budgets) without a provider account:
it answers deterministically, calls every tool it is offered once, and reports token usage the way
pydantic-ai estimates it. Select it in the EngineConfig:

    providers:
      rehearsal: {type: custom, factory: dry_run, conn_id: dry_run_default}
    cost_config:
      model_costs: {dry-run: {input: 0.0, output: 0.0}}

and give an agent ``llm_config: {model: dry-run, provider: rehearsal}``. The connection is read
(so a missing one fails like any other provider) but needs no fields.
"""

from __future__ import annotations

from typing import Any

from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, FunctionModel


def _dry_run_answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    answered = {part.tool_name for message in messages for part in message.parts if isinstance(part, ToolReturnPart)}
    pending = [tool for tool in info.function_tools if tool.name not in answered]
    if pending:
        return ModelResponse(parts=[ToolCallPart(tool.name, {}) for tool in pending])
    if info.output_tools:
        return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, {})])
    last = messages[-1].parts[-1]
    content = getattr(last, "content", "")
    return ModelResponse(parts=[TextPart(f"[dry-run] {str(content)[:200]}")])


def dry_run_model(*, model: str, connection: Any, options: dict[str, Any]) -> Model:
    return FunctionModel(_dry_run_answer, model_name=model)


MODEL_PROVIDERS = {"dry_run": dry_run_model}
