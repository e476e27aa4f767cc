from erp_agents.exceptions import UnknownToolError
from erp_agents.tools.registry import ToolRegistry, default_registry

__all__ = ["ToolRegistry", "UnknownToolError", "default_registry"]
