"""The cost record every agent task pushes to XCom, and the run totals built from them.

A record is filled in one process (the trigger's), request by request, and then crosses to
others as XCom: a versioned pydantic model, read back through ``erp_agents.xcom``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, computed_field, model_validator

COST_XCOM_KEY = "cost_record"
COST_RECORD_VERSION = 1


class RequestCost(BaseModel):
    """One model request as GovernedModel saw it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cost_usd: float
    latency_s: float
    cache_write_tokens: int = 0
    cost_micros: int = 0


class CostRecord(BaseModel):
    """Tokens, money and time one agent attempt spent; filled in place while the agent runs."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    schema_version: int = COST_RECORD_VERSION
    workflow: str
    agent: str
    module: str
    provider: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    calls: int = 0
    failed_calls: int = 0
    latency_s: float = 0.0
    tool_calls: int = 0
    estimated_usage_calls: int = 0
    retries: int = 0
    rate_limited: int = 0
    limiter_wait_s: float = 0.0
    price_source: str = ""
    price_date: str | None = None
    status: str = "success"
    error: str | None = None
    error_type: str | None = None
    requests: list[RequestCost] = []

    @model_validator(mode="before")
    @classmethod
    def _drop_derived(cls, data: Any) -> Any:
        # total_tokens is derived: written for readers of the raw XCom, ignored on the way back.
        if isinstance(data, dict) and "total_tokens" in data:
            data = {k: v for k, v in data.items() if k != "total_tokens"}
        return data

    def add(self, request: RequestCost) -> None:
        self.requests.append(request)
        self.calls += 1
        self.input_tokens += request.input_tokens
        self.output_tokens += request.output_tokens
        self.cache_read_tokens += request.cache_read_tokens
        self.cache_write_tokens += request.cache_write_tokens
        self.cost_usd = round(self.cost_usd + request.cost_usd, 10)
        self.latency_s = round(self.latency_s + request.latency_s, 6)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form pushed to XCom."""
        return self.model_dump(mode="json")


@dataclass(frozen=True)
class CostTotals:
    input_tokens: int
    output_tokens: int
    cost_usd: float
    calls: int

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def total_of(records: Iterable[CostRecord]) -> CostTotals:
    records = list(records)
    return CostTotals(
        input_tokens=sum(r.input_tokens for r in records),
        output_tokens=sum(r.output_tokens for r in records),
        cost_usd=round(sum(r.cost_usd for r in records), 10),
        calls=sum(r.calls for r in records),
    )
