"""JSON Schema of the spec format, generated from the same pydantic models the loader validates with."""

from __future__ import annotations

from typing import Any

from erp_agents.spec.models import EngineConfig, Workflow

SCHEMA_ID = "https://erp-agents.dev/schema/{kind}-v1.json"


def spec_json_schema(kind: str = "Workflow") -> dict[str, Any]:
    model = Workflow if kind == "Workflow" else EngineConfig
    schema = model.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID.format(kind=kind.lower())
    return schema
