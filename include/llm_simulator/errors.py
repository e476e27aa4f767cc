"""Error bodies in each provider's wire format.

The official SDKs map the HTTP status to an exception class and read the
message from these bodies, so the shapes must match the real APIs.
"""

from __future__ import annotations

from typing import Any, Literal

Api = Literal["openai", "anthropic"]

_OPENAI_TYPES: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_denied", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    502: ("server_error", None),
    503: ("server_error", "service_unavailable"),
    504: ("server_error", "gateway_timeout"),
    529: ("server_error", "overloaded"),
}

_ANTHROPIC_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    504: "api_error",
    529: "overloaded_error",
}

DEFAULT_MESSAGES: dict[int, str] = {
    400: "invalid request (simulated)",
    401: "invalid api key",
    403: "permission denied (simulated)",
    404: "not found (simulated)",
    429: "rate limit exceeded (simulated)",
    500: "internal server error (simulated)",
    502: "bad gateway (simulated)",
    503: "service unavailable (simulated)",
    504: "gateway timeout (simulated)",
    529: "overloaded (simulated)",
}

SUPPORTED_ERROR_STATUSES = frozenset(DEFAULT_MESSAGES)


def error_body(api: Api, status: int, message: str | None = None, *, error_type: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    """JSON body for an error with ``status`` in the format of ``api``."""
    text = message or DEFAULT_MESSAGES.get(status, "error")
    if api == "anthropic":
        kind = error_type or _ANTHROPIC_TYPES.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": text}}
    default_type, default_code = _OPENAI_TYPES.get(status, ("server_error", None))
    return {
        "error": {
            "message": text,
            "type": error_type or default_type,
            "param": None,
            "code": code if code is not None else default_code,
        }
    }
