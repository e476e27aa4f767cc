"""GovernedModel: the one place every model request of every agent passes through.

A pydantic-ai ``WrapperModel`` (as pydantic-ai's own ``ConcurrencyLimitedModel``) that, around each
request, runs the agent's RetryPolicy and, inside every attempt, asks a ``RequestGovernor`` for
permission (rate limits, budget reservation), times the call, prices the usage the provider
reported, and settles. So a retry takes limits and budget again and can bypass neither. The
governor is the seam where the limiter and the ledger plug in (``erp_agents.governance``);
``OpenGovernor`` lets everything through.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import Model, ModelRequestParameters, StreamedResponse
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings

from erp_agents.costs.pricing import TokenCounts, price_usd, quote
from erp_agents.costs.record import CostRecord, RequestCost
from erp_agents.exceptions import BudgetExceededError, PermanentAgentError
from erp_agents.limits.estimate import estimate_prompt_tokens as count_prompt_tokens
from erp_agents.monitoring import metrics
from erp_agents.runtime.retry import RetryInfo, call_with_retries
from erp_agents.spec.models import RetryPolicy, RetryStrategy

# Without a policy a request gets one attempt: what unit tests and `FunctionModel` runs expect.
SINGLE_ATTEMPT = RetryPolicy(strategy=RetryStrategy.NO_RETRY, max_retries=0)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RequestEstimate:
    """Who asks for a request and what it may cost at most, known before it is sent."""

    workflow: str
    agent: str
    module: str
    provider_name: str
    model: str
    prompt_tokens: int  # an estimate: about 4 characters a token
    max_output_tokens: int | None
    call_number: int  # 1-based, failed calls included
    priority: int
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


def _prompt_material(messages: list[ModelMessage], params: ModelRequestParameters | None) -> list[Any]:
    """What a provider counts as the prompt: the messages plus the tool and output schemas sent along."""
    material: list[Any] = list(messages)
    if params is not None:
        for tool in [*params.function_tools, *params.output_tools]:
            material.append({"name": tool.name, "description": tool.description or "",
                             "parameters": tool.parameters_json_schema})
    return material


def estimate_tokens(messages: list[ModelMessage], response: ModelResponse, model: str) -> TokenCounts:
    """A response without usage must still count toward cost and limits: count it with the tokenizer."""
    return TokenCounts(count_prompt_tokens(messages, model), count_prompt_tokens([response], model))


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
        priority: int = 5,
        retry_policy: RetryPolicy | None = None,
        deadline: float | None = None,
        log: logging.Logger | Any = log,
    ) -> None:
        super().__init__(wrapped)
        self.record = record
        self.provider_type = provider_type
        self.price_overrides = price_overrides or {}
        self.governor: RequestGovernor = governor or OpenGovernor()
        self.priority = priority
        self.retry_policy = retry_policy or SINGLE_ATTEMPT
        self.deadline = deadline  # time.monotonic() by which the whole agent must be done
        self.log = log
        # The one price check: an unpriced model is refused before its first request.
        price_usd(self.model_name, TokenCounts(1, 1), provider_type=provider_type, overrides=self.price_overrides)

    def estimate(self, messages: list[ModelMessage], model_settings: ModelSettings | None,
                 params: ModelRequestParameters | None = None) -> RequestEstimate:
        record = self.record
        return RequestEstimate(
            workflow=record.workflow,
            agent=record.agent,
            module=record.module,
            provider_name=record.provider,
            model=self.model_name,
            prompt_tokens=count_prompt_tokens(_prompt_material(messages, params), self.model_name),
            max_output_tokens=(model_settings or {}).get("max_tokens"),
            call_number=record.calls + record.failed_calls + 1,
            priority=self.priority,
            message_count=len(messages),
        )

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        """One model request under the retry policy; transient failures are retried here, in the call."""

        async def attempt() -> ModelResponse:
            return await self._governed_attempt(messages, model_settings, model_request_parameters)

        return await call_with_retries(
            attempt, self.retry_policy, deadline=self.deadline, log=self.log, on_retry=self._count_retry
        )

    async def _governed_attempt(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        wait_before = self.record.limiter_wait_s
        try:
            permit = await self.governor.acquire(self.estimate(messages, model_settings, model_request_parameters))
        except BudgetExceededError:
            metrics.record_budget_refusal(workflow=self.record.workflow, module=self.record.module, account="budget")
            raise
        started = time.monotonic()
        try:
            response = await self.wrapped.request(messages, model_settings, model_request_parameters)
        except BaseException as exc:
            self.record.failed_calls += 1
            # Shielded: a timeout cancels the agent's whole anyio scope, and without the shield the
            # release itself would be cancelled, leaking the reservation and the limiter slot.
            with anyio.CancelScope(shield=True):
                await self.governor.release(permit, exc)
            self._observe(None, time.monotonic() - started, self.record.limiter_wait_s - wait_before, exc)
            raise
        cost = self._cost_of(response, time.monotonic() - started, messages)
        self.record.add(cost)
        with anyio.CancelScope(shield=True):  # a settled cost is never lost to a cancellation
            await self.governor.settle(permit, cost)
        self._observe(cost, cost.latency_s, self.record.limiter_wait_s - wait_before, None)
        return response

    def _observe(self, cost: RequestCost | None, latency: float, waited: float, error: BaseException | None) -> None:
        """One structured log line and the metrics of one model request (no prompt, no key: data only)."""
        record = self.record
        status = getattr(error, "status_code", None)
        outcome = "ok" if error is None else "rate_limited" if status == 429 else "error"
        self.log.info(
            "model_request workflow=%s agent=%s model=%s provider=%s outcome=%s input_tokens=%d output_tokens=%d "
            "cost_usd=%.6f latency_s=%.3f retry=%d limiter_wait_s=%.3f",
            record.workflow, record.agent, self.model_name, record.provider, outcome,
            cost.input_tokens if cost else 0, cost.output_tokens if cost else 0, cost.cost_usd if cost else 0.0,
            latency, record.retries, waited,
        )
        metrics.record_request(
            workflow=record.workflow, module=record.module, model=self.model_name, provider=record.provider,
            input_tokens=cost.input_tokens if cost else 0, output_tokens=cost.output_tokens if cost else 0,
            cost_usd=cost.cost_usd if cost else 0.0, latency_s=latency, limiter_wait_s=waited, outcome=outcome,
        )

    def _count_retry(self, info: RetryInfo) -> None:
        self.record.retries += 1
        if info.status_code == 429:
            self.record.rate_limited += 1
        metrics.record_retry(workflow=self.record.workflow, module=self.record.module, model=self.model_name,
                             provider=self.record.provider)

    def _cost_of(self, response: ModelResponse, latency: float, messages: list[ModelMessage]) -> RequestCost:
        usage = response.usage
        tokens = TokenCounts(usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_write_tokens)
        if tokens.input_tokens == 0 and tokens.output_tokens == 0:
            tokens = estimate_tokens(messages, response, self.model_name)
            self.record.estimated_usage_calls += 1
            log.warning("%s reported no token usage; estimated %s", self.model_name, tokens)
        price = quote(self.model_name, tokens, provider_type=self.provider_type, overrides=self.price_overrides)
        self.record.price_source, self.record.price_date = price.source, price.price_date.isoformat()
        return RequestCost(
            model=response.model_name or self.model_name,
            input_tokens=tokens.input_tokens,
            output_tokens=tokens.output_tokens,
            cache_read_tokens=tokens.cache_read_tokens,
            cost_usd=float(price.usd),
            cost_micros=price.micros,
            latency_s=round(latency, 6),
            cache_write_tokens=tokens.cache_write_tokens,
        )

    @asynccontextmanager
    async def request_stream(self, *args: Any, **kwargs: Any) -> AsyncGenerator[StreamedResponse]:
        raise PermanentAgentError("streaming requests are not supported: they could not be governed")
        yield  # pragma: no cover
