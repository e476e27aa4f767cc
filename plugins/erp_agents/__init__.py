"""erp-agents: an Airflow 3 plugin and DAG factory that runs LLM agents across ERP modules.

The spec models, clients and engine facade import nothing from Airflow at import time;
``build_dag`` and the engine's methods import it on first use, so ``from erp_agents import
Workflow`` stays cheap for the lint CLI and tests. ``erp_agents.aio.OrchestrationEngine`` is the
same engine with async methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from erp_agents.clients import AnthropicClient, LLMClient, OpenAIClient, OpenAICompatibleClient
from erp_agents.engine import OrchestrationEngine
from erp_agents.exceptions import (
    AgentRunError,
    AgentTimeoutError,
    BudgetExceededError,
    ContractVersionError,
    ErpAgentsError,
    GovernanceStoreUnavailable,
    GraphError,
    PermanentAgentError,
    RateLimitNeverFitsError,
    SpecError,
    SpecProblem,
    TransientAgentError,
    UnknownPriceError,
    UnknownToolError,
)
from erp_agents.results import AgentResult, WorkflowResult, WorkflowStatus
from erp_agents.spec.models import (
    Agent,
    CostConfig,
    EngineConfig,
    LLMConfig,
    MonitorConfig,
    ProviderConfig,
    RateLimitConfig,
    RetryPolicy,
    RetryStrategy,
    Workflow,
)

if TYPE_CHECKING:
    from erp_agents.factory.render import build_dag

__all__ = [
    "Agent",
    "AgentResult",
    "AgentRunError",
    "AgentTimeoutError",
    "AnthropicClient",
    "BudgetExceededError",
    "ContractVersionError",
    "CostConfig",
    "EngineConfig",
    "ErpAgentsError",
    "GovernanceStoreUnavailable",
    "GraphError",
    "LLMClient",
    "LLMConfig",
    "MonitorConfig",
    "OpenAIClient",
    "OpenAICompatibleClient",
    "OrchestrationEngine",
    "PermanentAgentError",
    "ProviderConfig",
    "RateLimitConfig",
    "RateLimitNeverFitsError",
    "RetryPolicy",
    "RetryStrategy",
    "SpecError",
    "SpecProblem",
    "TransientAgentError",
    "UnknownPriceError",
    "UnknownToolError",
    "Workflow",
    "WorkflowResult",
    "WorkflowStatus",
    "build_dag",
]


def __getattr__(name: str) -> Any:
    if name == "build_dag":
        from erp_agents.factory.render import build_dag

        return build_dag
    raise AttributeError(name)
