"""The retry loop inside one model call: the spec's RetryPolicy on tenacity's waits.

Usage (GovernedModel, around acquire limits -> reserve budget -> request -> settle)::

    response = await call_with_retries(attempt, policy, deadline=deadline, log=log, on_retry=count)

Every attempt runs ``attempt()`` from the start, so limits and budget are taken again and a retry
can bypass neither. Transient failures (see ``failures``) are retried up to ``policy.max_retries``
times; the wait is the policy's (exponential, linear or fixed, plus jitter up to ``base_delay``),
or the provider's ``retry-after`` when that is longer, never above ``max_delay``. A retry whose wait
would end at or after ``deadline`` (a ``time.monotonic()`` value: the agent's timeout) is not
made. Permanent failures and errors that are not the provider's are not retried.

After the last attempt the caller gets ``TransientAgentError`` (Airflow's task retry may try again
later) or ``PermanentAgentError`` (retries cannot help: 4xx, context length, a body that stayed
malformed), chained to the provider's exception; errors ``failures.classify`` does not know (budget,
cancellation, programming errors) propagate unchanged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_base, wait_exponential, wait_fixed, wait_incrementing, wait_none, wait_random

from erp_agents.exceptions import PermanentAgentError, TransientAgentError
from erp_agents.runtime.failures import Failure, Mask, classify
from erp_agents.runtime.redact import airflow_mask
from erp_agents.spec.models import RetryPolicy, RetryStrategy

T = TypeVar("T")


class Logger(Protocol):
    """What the loop needs of a logger (``logging.Logger``, Airflow's task or trigger log)."""

    def warning(self, msg: str, *args: Any) -> None: ...


@dataclass(frozen=True)
class RetryInfo:
    """One retry about to happen: which attempt failed, why, and how long the loop waits."""

    attempt: int
    max_attempts: int
    reason: str
    message: str
    delay: float
    status_code: int | None
    retry_after: float | None


def max_attempts(policy: RetryPolicy) -> int:
    """Attempts in one call: ``max_retries + 1``, or 1 under NO_RETRY."""
    return policy.attempts


def policy_wait(policy: RetryPolicy) -> wait_base:
    """The policy's wait as tenacity composes it (before retry-after and the deadline)."""
    strategy = policy.strategy
    base: wait_base
    if strategy is RetryStrategy.EXPONENTIAL_BACKOFF:
        base = wait_exponential(multiplier=policy.base_delay, exp_base=policy.exponential_base, max=policy.max_delay)
    elif strategy is RetryStrategy.LINEAR_BACKOFF:
        base = wait_incrementing(start=policy.base_delay, increment=policy.base_delay, max=policy.max_delay)
    elif strategy is RetryStrategy.NO_RETRY:
        base = wait_none()
    else:
        base = wait_fixed(policy.base_delay)
    if policy.jitter and policy.base_delay > 0:
        base = base + wait_random(0, policy.base_delay)
    return base


_FAILURE_ATTR = "_erp_agents_failure"


def _attached(exc: BaseException | None) -> Failure | None:
    """The classification made while deciding to retry, kept on the exception so it is made once."""
    failure = getattr(exc, _FAILURE_ATTR, None)
    return failure if isinstance(failure, Failure) else None


def _failure(state: RetryCallState) -> Failure | None:
    return _attached(state.outcome.exception() if state.outcome is not None else None)


class _PolicyWait(wait_base):
    """The policy's wait, raised to the provider's retry-after, capped at max_delay."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.inner = policy_wait(policy)
        self.max_delay = policy.max_delay

    def __call__(self, retry_state: RetryCallState) -> float:
        delay = float(self.inner(retry_state))
        failure = _failure(retry_state)
        if failure is not None and failure.retry_after is not None:
            delay = max(delay, failure.retry_after)
        return max(min(delay, self.max_delay), 0.0)


class _StopAtDeadline(stop_base):
    """Stop when the next wait would end at or past the deadline (no time left for the attempt)."""

    def __init__(self, deadline: float | None, clock: Callable[[], float]) -> None:
        self.deadline = deadline
        self.clock = clock

    def __call__(self, retry_state: RetryCallState) -> bool:
        if self.deadline is None:
            return False
        return self.clock() + retry_state.upcoming_sleep >= self.deadline


def retrying(
    policy: RetryPolicy,
    *,
    deadline: float | None,
    log: Logger | logging.Logger,
    on_retry: Callable[[RetryInfo], None] | None = None,
    mask: Mask = airflow_mask,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> AsyncRetrying:
    """tenacity's ``AsyncRetrying`` for ``policy``; the last exception is re-raised as it was.

    Prefer ``call_with_retries``, which also turns the final failure into the project's errors.
    """
    attempts = max_attempts(policy)

    def transient(exc: BaseException) -> bool:
        failure = classify(exc, mask)
        if failure is not None:
            setattr(exc, _FAILURE_ATTR, failure)
        return failure is not None and failure.transient

    def before_sleep(state: RetryCallState) -> None:
        failure = _failure(state)
        assert failure is not None  # only classified failures are retried
        info = RetryInfo(state.attempt_number, attempts, failure.reason, failure.message, state.upcoming_sleep,
                         failure.status_code, failure.retry_after)
        log.warning("attempt %d/%d failed (%s); retrying in %.2f s", info.attempt, attempts, failure.describe(),
                    info.delay)
        if on_retry is not None:
            on_retry(info)

    extra: dict[str, Any] = {"sleep": sleep} if sleep is not None else {}
    return AsyncRetrying(
        stop=stop_after_attempt(attempts) | _StopAtDeadline(deadline, clock),
        wait=_PolicyWait(policy),
        retry=retry_if_exception(transient),
        before_sleep=before_sleep,
        reraise=True,
        **extra,
    )


async def call_with_retries(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    deadline: float | None,
    log: Logger | logging.Logger,
    on_retry: Callable[[RetryInfo], None] | None = None,
    mask: Mask = airflow_mask,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> T:
    """Run ``fn`` under ``policy``; raise Transient/PermanentAgentError once retrying cannot or may not go on."""
    controller = retrying(policy, deadline=deadline, log=log, on_retry=on_retry, mask=mask, clock=clock, sleep=sleep)
    try:
        return await controller(fn)
    except Exception as exc:
        failure = _attached(exc) or classify(exc, mask)
        if failure is None:
            raise
        raise _final_error(failure, int(controller.statistics.get("attempt_number", 1)), policy) from exc


def _final_error(failure: Failure, attempts: int, policy: RetryPolicy) -> TransientAgentError | PermanentAgentError:
    """The error the caller sees: the provider's words plus why retrying stopped."""
    if not failure.transient:
        return failure.error()
    if attempts < max_attempts(policy):
        why = f"stopped after {attempts} attempt(s): the next retry would end past the agent's deadline"
    else:
        why = f"gave up after {attempts} attempt(s)"
    error = failure.error(final=True)
    return type(error)(f"{why}: {failure.describe()}")
