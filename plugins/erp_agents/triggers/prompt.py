"""Prompt rendering in a sandbox. Upstream outputs are values in the context, never templates:
an upstream LLM answer that contains ``{{ ... }}`` is inserted as text and not evaluated."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from erp_agents.exceptions import PermanentAgentError


def _finalize(value: Any) -> Any:
    # Structured outputs print as JSON, not as Python reprs.
    return json.dumps(value, ensure_ascii=False, sort_keys=True) if isinstance(value, (dict, list)) else value


_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, finalize=_finalize)


@lru_cache(maxsize=4096)
def _compiled(template: str) -> Any:
    """Compiling costs milliseconds in the triggerer's loop; one compile per template per process."""
    return _ENV.from_string(template)


def render_prompt(template: str, context: dict[str, Any], *, agent: str) -> str:
    """Render ``prompt_template``; an error names the agent and the template's problem."""
    try:
        rendered: str = _compiled(template).render(context)
        return rendered
    except TemplateError as exc:
        raise PermanentAgentError(f"prompt_template of agent {agent!r}: {exc}") from None
