"""llm_config.prompt_cache becomes pydantic-ai's unified ``cache`` model setting."""

from __future__ import annotations

from erp_agents.spec.models import LLMConfig
from erp_agents.triggers.runner import model_settings


def test_prompt_cache_maps_to_the_cache_setting():
    on = LLMConfig(model="claude-sonnet-4-5", prompt_cache="1h")
    assert model_settings(on, "anthropic") == {"cache": "1h", "max_tokens": 4096}
    off = LLMConfig(model="gpt-4o-mini", temperature=0.2)
    # Every request is bounded: the limiter and the ledger reserve this worst case.
    assert model_settings(off, "openai") == {"temperature": 0.2, "max_tokens": 4096}
