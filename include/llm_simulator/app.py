"""Application factory: wires routes and per-server state together."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI

from include.llm_simulator import anthropic_api, control, models_api, openai_api, responses_api
from include.llm_simulator.drop import SimulatorApp
from include.llm_simulator.settings import SimulatorSettings
from include.llm_simulator.state import SimulatorState

__all__ = ["SimulatorSettings", "create_app"]


def create_app(settings: SimulatorSettings | None = None) -> FastAPI:
    """Build the simulator ASGI app for ``settings`` (defaults if omitted)."""
    settings = settings or SimulatorSettings()
    state = SimulatorState.from_settings(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            state.log.close()

    app = SimulatorApp(title="LLM simulator", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.sim = state

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(openai_api.router)
    app.include_router(responses_api.router)
    app.include_router(anthropic_api.router)
    app.include_router(models_api.router)
    app.include_router(control.router)
    return app
