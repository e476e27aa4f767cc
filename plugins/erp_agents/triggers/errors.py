"""Classify a failed agent run as transient or permanent, with a message safe to log."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

import httpx
from pydantic_ai import exceptions as pai

from erp_agents.exceptions import PermanentAgentError, TransientAgentError

_SECRET_PATTERNS = (
    re.compile(r"sk-ant-[A-Za-z0-9_\-]{6,}"),
    re.compile(r"sk-[A-Za-z0-9_\-]{6,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-]{8,}"),
    re.compile(r"(?i)((?:api[_-]?key|x-api-key|authorization)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]{6,}"),
)
_TRANSIENT = (
    pai.ModelRateLimitError,
    pai.ModelUnavailableError,
    pai.ModelServerError,
    pai.ModelConnectionError,
    pai.ModelRequestTimeout,
    TransientAgentError,
    asyncio.TimeoutError,
    httpx.TransportError,
)
_PERMANENT = (
    pai.ModelRequestRejectedError,
    pai.ModelQuotaExceededError,
    pai.UsageLimitExceeded,
    pai.UserError,
    PermanentAgentError,
)


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Remove API keys (known ones and anything shaped like one) from text bound for logs or XCom."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "***", text)
    return text


@dataclass(frozen=True)
class Failure:
    retryable: bool
    message: str
    error_type: str


def _describe(exc: BaseException) -> str:
    if isinstance(exc, pai.ModelHTTPError):
        return f"{exc.model_name}: HTTP {exc.status_code}: {exc.message}"
    if isinstance(exc, pai.ModelAPIError):
        return f"{exc.model_name}: {exc.message}"
    return str(exc) or type(exc).__name__


def classify(exc: BaseException, secrets: tuple[str, ...] = ()) -> Failure:
    """Transient (retry may help) or permanent; unknown errors count as transient, bounded by retries."""
    if isinstance(exc, _PERMANENT):
        retryable = False
    elif isinstance(exc, _TRANSIENT):
        retryable = True
    elif isinstance(exc, pai.ModelHTTPError):
        retryable = exc.status_code in (408, 409, 429) or exc.status_code >= 500
    elif isinstance(exc, pai.UnexpectedModelBehavior):
        retryable = False
    else:
        retryable = True
    return Failure(retryable, redact(_describe(exc), secrets), type(exc).__name__)
