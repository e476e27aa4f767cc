"""The cost record every agent task pushes to XCom, and the run totals built from them."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

COST_XCOM_KEY = "cost_record"


@dataclass
class RequestCost:
    """One model request as GovernedModel saw it."""

    model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cost_usd: float
    latency_s: float
    cache_write_tokens: int = 0


@dataclass
class CostRecord:
    """Tokens, money and time one agent attempt spent; JSON-able for XCom."""

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
    status: str = "success"
    error: str | None = None
    requests: list[RequestCost] = field(default_factory=list)

    def add(self, request: RequestCost) -> None:
        self.requests.append(request)
        self.calls += 1
        self.input_tokens += request.input_tokens
        self.output_tokens += request.output_tokens
        self.cache_read_tokens += request.cache_read_tokens
        self.cache_write_tokens += request.cache_write_tokens
        self.cost_usd = round(self.cost_usd + request.cost_usd, 10)
        self.latency_s = round(self.latency_s + request.latency_s, 6)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["total_tokens"] = self.total_tokens
        return data

    @classmethod
    def from_xcom(cls, value: Any) -> CostRecord | None:
        """Accept the dict or its JSON text (events from the triggerer arrive JSON-encoded)."""
        if value is None:
            return None
        if isinstance(value, str):
            value = json.loads(value)
        data = dict(value)
        data.pop("total_tokens", None)
        data["requests"] = [RequestCost(**r) for r in data.get("requests", [])]
        return cls(**data)


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
