"""Spec format, loading and dependency graph: no Airflow, no network, no database."""

from erp_agents.spec.graph import AgentGraph, build_graph
from erp_agents.spec.loader import load_spec_file, load_spec_text
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

__all__ = [
    "Agent",
    "AgentGraph",
    "CostConfig",
    "EngineConfig",
    "LLMConfig",
    "MonitorConfig",
    "ProviderConfig",
    "RateLimitConfig",
    "RetryPolicy",
    "RetryStrategy",
    "Workflow",
    "build_graph",
    "load_spec_file",
    "load_spec_text",
]
