from erp_agents.tools.registry import ToolRegistry, UnknownToolError, default_registry

__all__ = ["ToolRegistry", "UnknownToolError", "default_registry"]
