"""Turn any failure of an agent run into an exception of erp_agents' tree, its message masked.

The type decides retries: TransientAgentError (429, 5xx, timeouts, dropped connections, anything
unknown, bounded by the task's retries) or PermanentAgentError (400, 401, 403, 404, bad output,
limits). Messages go through Airflow's secrets masker, which knows every key a hook has read.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from airflow.sdk.log import redact  # type: ignore[attr-defined]  # the masker's public entry in 3.3
from pydantic_ai import exceptions as pai

from erp_agents.exceptions import AgentRunError, ErpAgentsError, PermanentAgentError, TransientAgentError

_TRANSIENT = (
    pai.ModelRateLimitError,
    pai.ModelUnavailableError,
    pai.ModelServerError,
    pai.ModelConnectionError,
    pai.ModelRequestTimeout,
    asyncio.TimeoutError,
    httpx.TransportError,
)
_PERMANENT = (
    pai.ModelRequestRejectedError,
    pai.ModelQuotaExceededError,
    pai.UsageLimitExceeded,
    pai.UserError,
    pai.UnexpectedModelBehavior,
)


def mask(text: str) -> str:
    """``text`` with every secret Airflow's masker knows replaced by ``***``."""
    return str(redact(text))


def mask_value(value: Any) -> Any:
    """A JSON-able value (an agent's output) with every known secret replaced, at any depth."""
    return redact(value)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, pai.ModelHTTPError):
        return f"{exc.model_name}: HTTP {exc.status_code}: {exc.message}"
    if isinstance(exc, pai.ModelAPIError):
        return f"{exc.model_name}: {exc.message}"
    return str(exc) or type(exc).__name__


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, _TRANSIENT):
        return True
    if isinstance(exc, ErpAgentsError):  # a spec-level problem (unknown tool, ...) found at run time
        return False
    if isinstance(exc, pai.ModelHTTPError):
        return exc.status_code in (408, 409, 429) or exc.status_code >= 500
    return not isinstance(exc, _PERMANENT)


def is_expected(exc: BaseException) -> bool:
    """A failure this module knows (ours, a provider's, the network's): logged without a traceback."""
    return isinstance(exc, (ErpAgentsError, pai.AgentRunError, *_TRANSIENT))


def as_agent_error(exc: BaseException) -> AgentRunError:
    """The failure as an AgentRunError: ours keep their type, others become transient or permanent."""
    if isinstance(exc, AgentRunError):
        masked = mask(str(exc))
        if masked == str(exc):
            return exc
        copy = type(exc).__new__(type(exc))
        Exception.__init__(copy, masked)
        return copy
    kind = TransientAgentError if _is_transient(exc) else PermanentAgentError
    return kind(mask(_describe(exc)))
