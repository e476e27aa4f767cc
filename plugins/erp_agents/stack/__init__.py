"""The embedded deployment: PostgreSQL from a pip wheel plus Airflow's scheduler, triggerer,
dag-processor and api-server, started, health-checked and stopped by pid (``python -m erp_agents up``)."""

from erp_agents.stack.deployment import Deployment, Status
from erp_agents.stack.errors import StackError
from erp_agents.stack.settings import Layout, StackState

__all__ = ["Deployment", "Layout", "StackError", "StackState", "Status"]
