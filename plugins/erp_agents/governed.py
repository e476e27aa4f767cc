"""GovernedModel: the one place every model request of every agent passes through.

A pydantic-ai ``WrapperModel`` (as pydantic-ai's own ``ConcurrencyLimitedModel``) that, around each
request, asks a ``RequestGovernor`` for permission (rate limits, budget reservation), times the
call, prices the usage the provider reported, and settles. The governor is the seam where the
limiter and the ledger plug in; ``OpenGovernor`` lets everything through.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import Model, ModelRequestParameters, StreamedResponse
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings

from erp_agents.costs.pricing import TokenCounts, price_usd
from erp_agents.costs.record import CostRecord, RequestCost
from erp_agents.exceptions import PermanentAgentError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RequestEstimate:
    """What a request may cost at most, known before it is sent."""

    model: str
    max_output_tokens: int | None
    message_count: int


class RequestGovernor(Protocol):
    """Permission around one model request; ``settle`` or ``release`` always follows ``acquire``."""

    async def acquire(self, estimate: RequestEstimate) -> Any: ...

    async def settle(self, permit: Any, cost: RequestCost) -> None: ...

    async def release(self, permit: Any, error: BaseException) -> None: ...


class OpenGovernor:
    """Lets every request through; the default until limits and budgets are configured."""

    async def acquire(self, estimate: RequestEstimate) -> None:
        return None

    async def settle(self, permit: Any, cost: RequestCost) -> None:
        return None

    async def release(self, permit: Any, error: BaseException) -> None:
        return None


def estimate_tokens(messages: list[ModelMessage], response: ModelResponse) -> TokenCounts:
    """About 4 characters a token: a response without usage must still count toward cost and limits."""
    sent = sum(len(str(getattr(part, "content", "") or getattr(part, "args", ""))) for m in messages for part in m.parts)
    received = sum(len(str(getattr(part, "content", "") or getattr(part, "args", ""))) for part in response.parts)
    return TokenCounts(max(1, sent // 4), received // 4)


class GovernedModel(WrapperModel):
    """Wraps a provider model; records tokens, cost and latency of every request into a CostRecord."""

    def __init__(
        self,
        wrapped: Model,
        *,
        record: CostRecord,
        provider_type: str,
        price_overrides: dict[str, dict[str, float]] | None = None,
        governor: RequestGovernor | None = None,
    ) -> None:
        super().__init__(wrapped)
        self.record = record
        self.provider_type = provider_type
        self.price_overrides = price_overrides or {}
        self.governor: RequestGovernor = governor or OpenGovernor()

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        max_tokens = (model_settings or {}).get("max_tokens")
        permit = await self.governor.acquire(RequestEstimate(self.model_name, max_tokens, len(messages)))
        started = time.monotonic()
        try:
            response = await self.wrapped.request(messages, model_settings, model_request_parameters)
        except BaseException as exc:
            self.record.failed_calls += 1
            await self.governor.release(permit, exc)
            raise
        cost = self._cost_of(response, time.monotonic() - started, messages)
        self.record.add(cost)
        await self.governor.settle(permit, cost)
        return response

    def _cost_of(self, response: ModelResponse, latency: float, messages: list[ModelMessage]) -> RequestCost:
        usage = response.usage
        tokens = TokenCounts(usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_write_tokens)
        if tokens.input_tokens == 0 and tokens.output_tokens == 0:
            tokens = estimate_tokens(messages, response)
            self.record.estimated_usage_calls += 1
            log.warning("%s reported no token usage; estimated %s", self.model_name, tokens)
        usd = price_usd(
            self.model_name, tokens, provider_type=self.provider_type, overrides=self.price_overrides
        )
        return RequestCost(
            model=response.model_name or self.model_name,
            input_tokens=tokens.input_tokens,
            output_tokens=tokens.output_tokens,
            cache_read_tokens=tokens.cache_read_tokens,
            cost_usd=float(usd),
            latency_s=round(latency, 6),
            cache_write_tokens=tokens.cache_write_tokens,
        )

    @asynccontextmanager
    async def request_stream(self, *args: Any, **kwargs: Any) -> AsyncGenerator[StreamedResponse]:
        raise PermanentAgentError("streaming requests are not supported: they could not be governed")
        yield  # pragma: no cover
