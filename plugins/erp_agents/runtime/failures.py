"""Classify a failed provider call: transient (a later attempt may succeed) or permanent.

Transient: 429, 500, 502, 503, 504, 529/overloaded, 408/409, timeouts, dropped or refused
connections, and a 200 whose body is not the provider's wire format (``malformed``: transient
while the retry policy has attempts left, permanent after). Permanent: 400, 401, 403, 404, 422,
context length, exhausted quota, and every 4xx not listed as transient.

pydantic-ai already turns the SDKs' errors into its own categories and reads ``retry-after-ms`` /
``retry-after`` into ``ModelAPIError.retry_after``; raw httpx errors (a custom provider, a hook's
own client) are read here from the response headers. Errors that are not about the provider call
(budget, programming errors, cancellation) are not classified: ``classify`` returns ``None`` and
the caller lets them through unchanged.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx
import pydantic
from pydantic_ai import exceptions as pai

from erp_agents.exceptions import PermanentAgentError, TransientAgentError
from erp_agents.runtime.redact import airflow_mask, truncate

TRANSIENT_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})
Mask = Callable[[str], str]


@dataclass(frozen=True)
class Failure:
    """One failed attempt, in words safe for logs (masked, truncated)."""

    transient: bool
    reason: str
    message: str
    status_code: int | None = None
    retry_after: float | None = None
    malformed: bool = False

    def describe(self) -> str:
        """``reason: message`` as logged and put into the raised error."""
        return f"{self.reason}: {self.message}" if self.message else self.reason

    def error(self, *, final: bool = True) -> TransientAgentError | PermanentAgentError:
        """The exception to raise for this failure; a malformed body is permanent once attempts run out."""
        if self.transient and not (self.malformed and final):
            return TransientAgentError(self.describe())
        return PermanentAgentError(self.describe())


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date); ``None`` when absent."""
    if not headers:
        return None
    lowered = {key.lower(): value for key, value in headers.items()}
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms is not None:
        try:
            return max(float(raw_ms) / 1000.0, 0.0)
        except ValueError:
            pass
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(parsed.timestamp() - (time.time() if now is None else now), 0.0)


def _body_text(body: object) -> str:
    """The provider's own message when the body has one, else the body as text."""
    if isinstance(body, Mapping):
        error = body.get("error", body)
        if isinstance(error, Mapping) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(body.get("message"), str):
            return str(body["message"])
        return json.dumps(body, default=str)
    return "" if body is None else str(body)


def _status_reason(status: int, exc: BaseException) -> str:
    if status == 429:
        return "rate limited (HTTP 429)"
    if status == 529 or isinstance(exc, pai.ModelOverloadedError):
        return f"overloaded (HTTP {status})"
    if isinstance(exc, pai.ModelContextWindowExceededError):
        return f"context length exceeded (HTTP {status})"
    return f"HTTP {status}"


def _from_http(exc: pai.ModelHTTPError, mask: Mask) -> Failure:
    status = exc.status_code
    transient = status in TRANSIENT_STATUSES or status >= 500
    if isinstance(exc, (pai.ModelQuotaExceededError, pai.ModelContextWindowExceededError)):
        transient = False
    return Failure(transient, _status_reason(status, exc), truncate(mask(_body_text(exc.body))), status,
                   exc.retry_after)


def _from_httpx_status(exc: httpx.HTTPStatusError, mask: Mask) -> Failure:
    status = exc.response.status_code
    transient = status in TRANSIENT_STATUSES or status >= 500
    try:
        text = exc.response.text
        text = _body_text(json.loads(text))
    except httpx.ResponseNotRead:
        text = ""
    except ValueError:
        pass
    return Failure(transient, _status_reason(status, exc), truncate(mask(text)), status,
                   parse_retry_after(exc.response.headers))


def _malformed(exc: BaseException, mask: Mask) -> Failure:
    body = getattr(exc, "body", None)
    text = str(getattr(exc, "message", "") or exc or type(exc).__name__)
    if body:
        text = f"{text}; body: {body}"
    return Failure(True, "malformed response", truncate(mask(text)), malformed=True)


def _is_decode_failure(exc: BaseException) -> bool:
    cause = exc.__cause__ or exc.__context__
    return isinstance(cause, (json.JSONDecodeError, pydantic.ValidationError, httpx.DecodingError))


def classify(exc: BaseException, mask: Mask = airflow_mask) -> Failure | None:
    """What a failed provider call means; ``None`` for errors that are not the provider's (let them through)."""
    if isinstance(exc, asyncio.CancelledError):
        return None
    if isinstance(exc, pai.ModelHTTPError):
        return _from_http(exc, mask)
    if isinstance(exc, pai.ModelRequestTimeout):
        return Failure(True, "request timeout", truncate(mask(exc.message)), retry_after=exc.retry_after)
    if isinstance(exc, pai.ModelTimeoutError):
        return Failure(True, "timeout", truncate(mask(exc.message)))
    if isinstance(exc, pai.ModelConnectionError):
        return Failure(True, "connection failed", truncate(mask(exc.message)), retry_after=exc.retry_after)
    if isinstance(exc, (pai.ModelQuotaExceededError, pai.ModelRequestRejectedError)):
        return Failure(False, type(exc).__name__, truncate(mask(exc.message)))
    if isinstance(exc, (pai.ModelRateLimitError, pai.ModelUnavailableError, pai.ModelServerError)):
        return Failure(True, type(exc).__name__, truncate(mask(exc.message)), retry_after=exc.retry_after)
    if isinstance(exc, pai.ModelAPIError):
        if _is_decode_failure(exc):
            return _malformed(exc, mask)
        return Failure(True, "provider error", truncate(mask(exc.message)), retry_after=exc.retry_after)
    if isinstance(exc, pai.ContentFilterError):
        return Failure(False, "content filtered", truncate(mask(exc.message)))
    if isinstance(exc, pai.UnexpectedModelBehavior):
        return _malformed(exc, mask)
    if isinstance(exc, (json.JSONDecodeError, httpx.DecodingError)):
        return _malformed(exc, mask)
    if isinstance(exc, httpx.HTTPStatusError):
        return _from_httpx_status(exc, mask)
    if isinstance(exc, httpx.TimeoutException):
        return Failure(True, "timeout", truncate(mask(str(exc) or type(exc).__name__)))
    if isinstance(exc, httpx.TransportError):
        return Failure(True, "connection failed", truncate(mask(str(exc) or type(exc).__name__)))
    if isinstance(exc, TimeoutError):
        return Failure(True, "timeout", truncate(mask(str(exc) or "timed out")))
    if isinstance(exc, TransientAgentError):
        return Failure(True, "transient", truncate(mask(str(exc))))
    return None
