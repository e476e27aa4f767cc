"""Control endpoints under ``/_sim`` used by tests and benchmarks."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.responses import JSONResponse

from include.llm_simulator.state import SimulatorState

router = APIRouter(prefix="/_sim")


class ScriptRequest(BaseModel):
    """Fault script: entries consumed one per model request, FIFO."""

    responses: list[str]
    model: str | None = None


def _state(request: Request) -> SimulatorState:
    return request.app.state.sim


@router.post("/script")
async def script(body: ScriptRequest, request: Request) -> JSONResponse:
    """Queue scripted outcomes (``ok``, ``timeout``, ``malformed``, ``drop``, ``500``...)."""
    try:
        pending = _state(request).faults.script(body.responses, body.model)
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse({"queued": len(body.responses), "pending": pending, "model": body.model})


@router.get("/script")
async def pending_script(request: Request) -> dict[str, Any]:
    """Scripted entries not consumed yet, by model (``*`` = any model)."""
    return _state(request).faults.pending()


@router.get("/requests")
async def requests(request: Request) -> list[dict[str, Any]]:
    """All logged model requests since start or the last reset."""
    return _state(request).log.entries()


@router.post("/reset")
async def reset(request: Request) -> dict[str, str]:
    """Clear the memory log, rate-limit windows, fault scripts and prompt cache."""
    await _state(request).reset()
    return {"status": "reset"}


@router.get("/stats")
async def stats(request: Request) -> dict[str, Any]:
    """Counts by status/model/fault, in-flight concurrency, and the peak concurrency per key hash."""
    state = _state(request)
    return {**state.log.stats(), "peak_in_flight_by_key": state.limiter.peaks()}
