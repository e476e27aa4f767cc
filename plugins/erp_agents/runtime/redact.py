"""Masking and cutting text that leaves the process (errors, notifications).

Its own module, free of pydantic-ai, because DAG files import it (through notifications): every
parse, in the dag-processor and in each worker task process, would otherwise import pydantic-ai
(about 1.3 s of CPU) for two string helpers.
"""

from __future__ import annotations

MAX_MESSAGE_CHARS = 500


def airflow_mask(text: str) -> str:
    """Airflow's secrets masker (every key registered with ``mask_secret``); identity without Airflow."""
    try:
        from airflow.sdk.log import redact  # type: ignore[attr-defined]  # re-exported there, without __all__
    except ImportError:  # pragma: no cover - Airflow is pinned; runtime stays importable without it
        return text
    return str(redact(text))


def truncate(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """At most ``limit`` characters, saying how much was cut."""
    return text if len(text) <= limit else f"{text[:limit]}... [{len(text) - limit} more chars]"
