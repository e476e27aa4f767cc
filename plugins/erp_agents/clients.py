"""LLM clients of the original Python API, as Airflow connections.

``OpenAIClient(api_key=...)`` does not open a client: the run's hook builds that from an Airflow
connection. The client object only says which provider and connection the engine should use, and
hands the key to Airflow as an environment connection (``AIRFLOW_CONN_<ID>``) of this process, so
it is never written to the metadata DB, XCom, the UI or a log line.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import ClassVar

from pydantic import SecretStr

from erp_agents.spec.models import ProviderConfig, ProviderType


@dataclass(frozen=True)
class LLMClient:
    """A provider account: its wire format, key, endpoint and the connection id the engine uses."""

    api_key: SecretStr | str | None = field(default=None, repr=False)
    base_url: str | None = None
    conn_id: str | None = None
    extra: dict[str, object] = field(default_factory=dict)

    provider_type: ClassVar[ProviderType] = "openai"
    conn_type: ClassVar[str] = "openai"

    @property
    def connection_id(self) -> str:
        return self.conn_id or f"erp_agents_{self.provider_type}"

    def provider_config(self, configured: ProviderConfig | None = None) -> ProviderConfig:
        """The provider this client stands for: ``configured`` (the engine config's entry of the same
        name: its limits, pool, timeouts...) with the wire format and connection the client owns.

        Raises ValueError when ``configured`` names another provider type: the client cannot honour it.
        """
        if configured is None:
            return ProviderConfig(type=self.provider_type, conn_id=self.connection_id)
        if "type" in configured.model_fields_set and configured.type != self.provider_type:
            raise ValueError(
                f"providers.{self.provider_type}.type is {configured.type!r} in the engine config, but the "
                f"{type(self).__name__} given as llm_client is {self.provider_type!r}: "
                "drop one or make them agree"
            )
        # Through a dump of the set fields, so the nested limits keep which tiers they name.
        data = {**configured.model_dump(exclude_unset=True),
                "type": self.provider_type, "conn_id": self.connection_id}
        return ProviderConfig.model_validate(data)

    def connection_json(self) -> str:
        """The connection in Airflow's JSON form, as AIRFLOW_CONN_* environment variables hold it."""
        key = self.api_key.get_secret_value() if isinstance(self.api_key, SecretStr) else self.api_key
        conn: dict[str, object] = {"conn_type": self.conn_type}
        if key:
            conn["password"] = key
        if self.base_url:
            conn["host"] = self.base_url
        if self.extra:
            conn["extra"] = dict(self.extra)
        return json.dumps(conn)

    def expose(self) -> str:
        """Make the connection visible to this process's tasks and triggers; returns the env var."""
        name = f"AIRFLOW_CONN_{self.connection_id.upper()}"
        os.environ[name] = self.connection_json()
        return name


@dataclass(frozen=True)
class OpenAIClient(LLMClient):
    """OpenAI (api.openai.com unless ``base_url`` is given)."""

    provider_type: ClassVar[ProviderType] = "openai"
    conn_type: ClassVar[str] = "openai"


@dataclass(frozen=True)
class AnthropicClient(LLMClient):
    """Anthropic's messages API."""

    provider_type: ClassVar[ProviderType] = "anthropic"
    conn_type: ClassVar[str] = "anthropic"


@dataclass(frozen=True)
class OpenAICompatibleClient(LLMClient):
    """Any endpoint that speaks OpenAI chat completions (vLLM, Ollama, Azure OpenAI, a gateway)."""

    provider_type: ClassVar[ProviderType] = "openai_compatible"
    conn_type: ClassVar[str] = "openai"

    def __post_init__(self) -> None:
        if not self.base_url:
            raise ValueError("an OpenAI-compatible client needs base_url")

