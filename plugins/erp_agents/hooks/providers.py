"""Custom model providers: a name -> a factory that builds a pydantic-ai ``Model``.

Registered explicitly, never imported by a dotted path from a spec: the ``erp_agents.model_providers``
entry point group, plus ``MODEL_PROVIDERS`` of the project's ``include.custom_providers`` module.
An EngineConfig provider ``{type: custom, factory: <name>, conn_id: <conn>}`` selects one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache

from pydantic_ai.models import Model

from erp_agents._registration import registered
from erp_agents.exceptions import PermanentAgentError

ENTRY_POINT_GROUP = "erp_agents.model_providers"
BUILTIN_PROVIDER_MODULES = ("include.custom_providers",)
ModelFactory = Callable[..., Model]  # (model=str, connection=Connection, options=dict) -> Model


@lru_cache(maxsize=1)
def registered_providers() -> Mapping[str, ModelFactory]:
    return registered(BUILTIN_PROVIDER_MODULES, "MODEL_PROVIDERS", ENTRY_POINT_GROUP)


def model_provider(name: str) -> ModelFactory:
    providers = registered_providers()
    if name not in providers:
        known = ", ".join(sorted(providers)) or "none"
        raise PermanentAgentError(f"unknown model provider {name!r}; registered: {known}")
    return providers[name]


