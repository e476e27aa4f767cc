"""Airflow connection -> pydantic-ai model. Nothing else: no calls, no retries, no policy.

Connections are the ones Airflow users already have: ``openai`` (apache-airflow-providers-openai:
password = API key, host = base_url, so any OpenAI-compatible endpoint works; Chat Completions, or the
Responses API with ``openai_api: responses``), ``anthropic`` (apache-airflow-providers-anthropic) and
``pydanticai`` (apache-airflow-providers-common-ai: the model string, e.g. ``openai:gpt-4o-mini``, picks
pydantic-ai's model class). SDK-internal retries are off: our retry policy owns retries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from airflow.sdk.bases.hook import BaseHook
from pydantic_ai.models import Model

from erp_agents.exceptions import PermanentAgentError

OPENAI_TYPES = ("openai", "openai_compatible")


def bare_model(model: str) -> str:
    return model.split(":", 1)[-1]


class AgentModelHook(BaseHook):
    """Builds the pydantic-ai model for one provider entry of the EngineConfig."""

    def __init__(self, provider: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.provider = provider
        self.conn_id: str = provider["conn_id"]

    @asynccontextmanager
    async def model(self, model: str) -> AsyncIterator[Model]:
        """The model for one agent run; its SDK client (and connections) is closed on exit."""
        built = await self.aget_model(model)
        try:
            yield built
        finally:
            client = getattr(built, "client", None)
            if client is not None:
                await client.close()

    async def aget_model(self, model: str) -> Model:
        """A new model with its own SDK client; the caller closes it (see ``model``)."""
        kind = self.provider["type"]
        if kind in OPENAI_TYPES:
            return await self._openai_model(bare_model(model))
        if kind == "anthropic":
            return await self._anthropic_model(bare_model(model))
        if kind == "pydanticai":
            return await self._pydanticai_model(model)
        if kind == "custom":
            return await self._custom_model(bare_model(model))
        raise PermanentAgentError(f"unknown provider type {kind!r} (connection {self.conn_id!r})")

    def _client_options(self) -> dict[str, Any]:
        return {"max_retries": 0, "timeout": float(self.provider.get("request_timeout", 120.0))}

    async def _openai_model(self, model: str) -> Model:
        from airflow.providers.openai.hooks.openai import OpenAIHook
        from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
        from pydantic_ai.providers.openai import OpenAIProvider

        client = (await OpenAIHook(conn_id=self.conn_id).aget_conn()).with_options(**self._client_options())
        provider = OpenAIProvider(openai_client=client)
        if self.provider.get("openai_api") == "responses":
            return OpenAIResponsesModel(model, provider=provider)
        return OpenAIChatModel(model, provider=provider)

    async def _anthropic_model(self, model: str) -> Model:
        from airflow.providers.anthropic.hooks.anthropic import AnthropicHook
        from pydantic_ai.models.anthropic import AnthropicModel
        from pydantic_ai.providers.anthropic import AnthropicProvider

        client = (await AnthropicHook(conn_id=self.conn_id).get_async_conn()).with_options(**self._client_options())
        return AnthropicModel(model, provider=AnthropicProvider(anthropic_client=client))

    async def _pydanticai_model(self, model: str) -> Model:
        """apache-airflow-providers-common-ai's ``pydanticai`` connection, looked up without blocking."""
        from airflow.providers.common.ai.hooks.pydantic_ai import PydanticAIHook

        hook = PydanticAIHook(llm_conn_id=self.conn_id, model_id=model)
        hook._seed_connection(await self.aget_connection(self.conn_id))
        built = hook.get_conn()
        # Retries belong to the workflow's retry policy, not the SDK. pydantic-ai models expose their
        # provider's client read-only, so the provider's client is the one swapped.
        provider = getattr(built, "_provider", None)
        client = getattr(provider, "_client", None)
        if client is not None and hasattr(client, "with_options"):
            provider._client = client.with_options(**self._client_options())  # type: ignore[union-attr]
        return built

    async def _custom_model(self, model: str) -> Model:
        """A model from a registered provider factory, given this connection's fields."""
        from erp_agents.hooks.providers import model_provider

        factory = model_provider(self.provider["factory"])
        conn = await self.aget_connection(self.conn_id)
        return factory(model=model, connection=conn, options=self._client_options())

    def test_connection(self) -> tuple[bool, str]:
        """Costs nothing: checks only that the connection exists and has a key."""
        conn = self.get_connection(self.conn_id)
        if not conn.password and not (conn.extra_dejson or {}).get("auth_type"):
            return False, f"connection {self.conn_id!r} has no API key (password)"
        return True, f"connection {self.conn_id!r} is configured"
