"""``GET /v1/models`` in the OpenAI or Anthropic shape.

Both providers use the same path; requests carrying ``anthropic-version`` or
``x-api-key`` get the Anthropic shape. Any model name is accepted by the
model endpoints; this list only advertises common ones.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from include.llm_simulator.errors import error_body
from include.llm_simulator.handling import check_api_key
from include.llm_simulator.anthropic_api import ANTHROPIC
from include.llm_simulator.openai_api import OPENAI

OPENAI_MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-4.1", "o4-mini")
ANTHROPIC_MODELS = ("claude-haiku-4-5", "claude-sonnet-4-5", "claude-3-5-haiku-latest")
CREATED = 1_700_000_000
CREATED_AT = "2023-11-14T22:13:20Z"

router = APIRouter()


@router.get("/v1/models")
async def list_models(request: Request) -> Response:
    """Advertised models; requires an API key like the real endpoints."""
    anthropic = "anthropic-version" in request.headers or "x-api-key" in request.headers
    dialect = ANTHROPIC if anthropic else OPENAI
    problem = check_api_key(dialect.api_key(request.headers), request.app.state.sim.settings.api_key)
    if problem:
        return JSONResponse(error_body(dialect.api, 401, problem), status_code=401)
    if anthropic:
        data = [{"type": "model", "id": m, "display_name": m, "created_at": CREATED_AT} for m in ANTHROPIC_MODELS]
        return JSONResponse({"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]})
    data = [{"id": m, "object": "model", "created": CREATED, "owned_by": "llm-simulator"} for m in OPENAI_MODELS]
    return JSONResponse({"object": "list", "data": data})
