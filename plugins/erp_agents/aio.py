"""The OrchestrationEngine with the original API's async methods, for code written with asyncio.

Registration runs in a worker thread and each run is an asyncio subprocess, so the caller's event
loop stays free and runs started together with ``asyncio.gather`` proceed side by side.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from erp_agents.clients import LLMClient
from erp_agents.engine import OrchestrationEngine as SyncOrchestrationEngine
from erp_agents.engine import caller_file
from erp_agents.results import WorkflowResult
from erp_agents.spec.models import EngineConfig, Workflow


class OrchestrationEngine:
    """``await engine.register_workflow(w)`` -> id; ``await engine.execute_workflow(id)`` -> result."""

    def __init__(
        self, config: EngineConfig | None = None, llm_client: LLMClient | None = None, *, initialize_db: bool = True
    ) -> None:
        self.sync = SyncOrchestrationEngine(config, llm_client, initialize_db=initialize_db)

    @property
    def config(self) -> EngineConfig:
        return self.sync.config

    @property
    def workflows(self) -> dict[str, Workflow]:
        return self.sync.workflows

    async def register_workflow(self, workflow: Workflow) -> str:
        return await asyncio.to_thread(self.sync.register_workflow, workflow, source=caller_file())

    async def execute_workflow(
        self, workflow_id: str, *, params: dict[str, Any] | None = None, logical_date: datetime | None = None
    ) -> WorkflowResult:
        run = await asyncio.to_thread(self.sync.prepare_run, workflow_id, params=params, logical_date=logical_date)
        with run.log_file.open("wb") as log:
            child = await asyncio.create_subprocess_exec(
                *run.argv, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT, env=run.env
            )
            code = await child.wait()
        return await asyncio.to_thread(run.result, code)

    async def get_workflow_status(self, workflow_id: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.get_workflow_status, workflow_id)
