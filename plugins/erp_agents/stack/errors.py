"""The one error of the deployment commands: its message says what is wrong and how to get out."""

from __future__ import annotations

from erp_agents.exceptions import ErpAgentsError


class StackError(ErpAgentsError):
    """The embedded deployment cannot start, attach or stop; nothing was left half-started."""
