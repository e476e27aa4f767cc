"""The OrchestrationEngine with the original API's async methods, for code written with asyncio.

Every call runs the sync engine's REST calls in a worker thread, so the caller's event loop stays
free and runs started together with ``asyncio.gather`` proceed side by side on the deployment.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from erp_agents.clients import LLMClient
from erp_agents.engine import OrchestrationEngine as SyncOrchestrationEngine
from erp_agents.engine import caller_file
from erp_agents.results import WorkflowResult
from erp_agents.spec.models import EngineConfig, Workflow


class OrchestrationEngine:
    """``await engine.register_workflow(w)`` -> id; ``await engine.execute_workflow(id)`` -> result."""

    def __init__(
        self,
        config: EngineConfig | None = None,
        llm_client: LLMClient | None = None,
        *,
        url: str | None = None,
        username: str | None = None,
        password: str | None = None,
        home: str | Path | None = None,
        run_timeout: float | None = None,
    ) -> None:
        self.sync = SyncOrchestrationEngine(config, llm_client, url=url, username=username, password=password,
                                            home=home, run_timeout=run_timeout)
        self._connect_lock = asyncio.Lock()

    @property
    def config(self) -> EngineConfig:
        return self.sync.config

    @property
    def workflows(self) -> dict[str, Workflow]:
        return self.sync.workflows

    async def _connected(self) -> None:
        async with self._connect_lock:  # one deployment start, however many calls wait for it
            await asyncio.to_thread(lambda: self.sync.api)

    async def register_workflow(self, workflow: Workflow) -> str:
        await self._connected()
        return await asyncio.to_thread(self.sync.register_workflow, workflow, source=caller_file())

    async def execute_workflow(
        self, workflow_id: str, *, params: dict[str, Any] | None = None, logical_date: datetime | None = None
    ) -> WorkflowResult:
        await self._connected()
        return await asyncio.to_thread(self.sync.execute_workflow, workflow_id, params=params, logical_date=logical_date)

    async def get_workflow_status(self, workflow_id: str) -> dict[str, Any]:
        await self._connected()
        return await asyncio.to_thread(self.sync.get_workflow_status, workflow_id)

    async def get_system_status(self, window_hours: float | None = None) -> dict[str, Any]:
        await self._connected()
        return await asyncio.to_thread(self.sync.get_system_status, window_hours)

    async def get_agent_status(self, workflow_id: str, run_id: str | None = None) -> dict[str, Any]:
        await self._connected()
        return await asyncio.to_thread(self.sync.get_agent_status, workflow_id, run_id)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.sync.close)

    async def __aenter__(self) -> OrchestrationEngine:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()
