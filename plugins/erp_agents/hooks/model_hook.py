"""Airflow connection -> pydantic-ai model. Nothing else: no calls, no retries, no policy.

Connections are the ones Airflow users already have: ``openai`` (apache-airflow-providers-openai:
password = API key, host = base_url, so any OpenAI-compatible endpoint works; Chat Completions, or the
Responses API with ``openai_api: responses``), ``anthropic`` (apache-airflow-providers-anthropic) and
``pydanticai`` (apache-airflow-providers-common-ai: the model string, e.g. ``openai:gpt-4o-mini``, picks
pydantic-ai's model class). SDK-internal retries are off: our retry policy owns retries.

Every key read from a connection is registered with Airflow's secrets masker before any client
exists, so task, trigger and component logs and our error messages never show it.

One triggerer runs hundreds of agents: the connection read and the model with its SDK client and
HTTP pool are shared by all agents of the process (``erp_agents.hooks.shared``), and the pool is
sized for hundreds of requests in flight. A ``custom`` provider's factory builds per agent: what it
shares is its own choice.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from airflow.sdk.bases.hook import BaseHook
from airflow.sdk.log import amask_secret
from pydantic_ai.models import Model

from erp_agents.exceptions import PermanentAgentError
from erp_agents.hooks.shared import connection_digest, loop_caches, tls_context
from erp_agents.limits.estimate import tokenizer_loaded, o200k
from erp_agents.spec.models import ProviderConfig, bare_model_name

OPENAI_TYPES = ("openai", "openai_compatible")
# Connection extras that may hold a key, whatever the provider package calls it.
SECRET_EXTRAS = ("api_key", "key", "token", "access_token", "secret", "password", "authorization")
# The pools of a connection serve every agent of the process: room for hundreds of requests in
# flight, and idle connections kept long enough to serve the next wave (a tool round, a retry).
POOL_LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=1000, keepalive_expiry=60.0)
# httpcore's pool scans all its requests on every request start and end: one pool for 500 requests
# in flight costs more loop time than the requests. Shared models are spread over this many pools.
POOL_SHARDS = 16
_NEXT_SHARD = itertools.count()


async def mask_connection_secrets(conn: Any) -> None:
    """Register the connection's key (password and key-like extras) with Airflow's secrets masker."""
    if conn.password:
        await amask_secret(conn.password, "password")
    extras = conn.extra_dejson or {}
    for name, value in extras.items():
        if isinstance(value, str) and value and name.lower() in SECRET_EXTRAS:
            await amask_secret(value, name)


class AgentModelHook(BaseHook):
    """Builds the pydantic-ai model for one provider entry of the EngineConfig.

    ``conn_id`` is the agent's own connection (``llm_config.conn_id``), read as the provider's type;
    without one, the provider's. Connections, clients and models are cached per connection id, so
    agents on different connections (accounts, keys) never share a client."""

    def __init__(self, provider: ProviderConfig, conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.provider = provider
        self.conn_id: str = conn_id or provider.conn_id

    @asynccontextmanager
    async def model(self, model: str) -> AsyncIterator[Model]:
        """The model for one agent run. Shared models stay open for the next agent; a ``custom``
        provider's model is the agent's own, and its client (if any) is closed on exit."""
        if not tokenizer_loaded():
            # The tokenizer's first load is ~0.5 s of CPU: in a thread, not on the triggerer's loop.
            await asyncio.to_thread(o200k)
        if self.provider.type == "custom":
            built = await self.aget_model(model)
            try:
                yield built
            finally:
                client = getattr(built, "client", None)
                if client is not None:
                    await client.close()
            return
        yield await self.ashared_model(model)

    async def aconnection(self) -> Any:
        """The connection, read and masked once per ``CONNECTION_TTL_S`` per process, not per agent."""

        async def read() -> Any:
            conn = await self.aget_connection(self.conn_id)
            await mask_connection_secrets(conn)
            return conn

        return await loop_caches().connections.get(self.conn_id, read)

    async def ashared_model(self, model: str) -> Model:
        """A model the agents of this process share for this connection, model and options: one of
        ``POOL_SHARDS``, taken in turn, so each HTTP pool carries a share of the requests."""
        conn = await self.aconnection()
        p = self.provider
        key = (p.type, self.conn_id, connection_digest(conn), p.request_timeout, p.openai_api, model)
        shard = next(_NEXT_SHARD) % POOL_SHARDS
        shared: Model = await loop_caches().models.get((key, shard), lambda: self._build(model, conn, key))
        return shared

    async def aget_model(self, model: str) -> Model:
        """A new model with its own HTTP pool, not shared; the caller closes its client."""
        conn = await self.aconnection()
        return await self._build(model, conn, None)

    async def _build(self, model: str, conn: Any, key: tuple[Any, ...] | None) -> Model:
        kind = self.provider.type
        if kind in OPENAI_TYPES or kind == "anthropic":
            client = await self._sdk_client(key)
            if kind == "anthropic":
                from pydantic_ai.models.anthropic import AnthropicModel
                from pydantic_ai.providers.anthropic import AnthropicProvider

                return AnthropicModel(bare_model_name(model), provider=AnthropicProvider(anthropic_client=client))
            from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
            from pydantic_ai.providers.openai import OpenAIProvider

            model_class = OpenAIResponsesModel if self.provider.openai_api == "responses" else OpenAIChatModel
            return model_class(bare_model_name(model), provider=OpenAIProvider(openai_client=client))
        if kind == "pydanticai":
            return await self._pydanticai_model(model, conn)
        if kind == "custom":
            return await self._custom_model(bare_model_name(model), conn)
        raise PermanentAgentError(f"unknown provider type {kind!r} (connection {self.conn_id!r})")

    def _client_options(self) -> dict[str, Any]:
        return {"max_retries": 0, "timeout": float(self.provider.request_timeout)}

    async def _sdk_client(self, key: tuple[Any, ...] | None) -> Any:
        """The provider hook's async SDK client on a new HTTP pool. The hook's client (it reads the
        connection and builds a TLS context) is built once per ``key``, then copied per pool."""
        if key is None:
            base = await self._hook_client()
        else:
            base = await loop_caches().models.get(("sdk-client", key), self._hook_client)
        import anthropic
        import openai

        pool_class = anthropic.DefaultAsyncHttpxClient if self.provider.type == "anthropic" else openai.DefaultAsyncHttpxClient
        http_client = pool_class(limits=POOL_LIMITS, verify=await tls_context())
        return base.with_options(**self._client_options(), http_client=http_client)

    async def _hook_client(self) -> Any:
        if self.provider.type == "anthropic":
            from airflow.providers.anthropic.hooks.anthropic import AnthropicHook

            return await AnthropicHook(conn_id=self.conn_id).get_async_conn()
        from airflow.providers.openai.hooks.openai import OpenAIHook

        return await OpenAIHook(conn_id=self.conn_id).aget_conn()

    async def _pydanticai_model(self, model: str, conn: Any) -> Model:
        """apache-airflow-providers-common-ai's ``pydanticai`` connection, looked up without blocking."""
        from airflow.providers.common.ai.hooks.pydantic_ai import PydanticAIHook

        hook = PydanticAIHook(llm_conn_id=self.conn_id, model_id=model)
        hook._seed_connection(conn)
        built = hook.get_conn()
        # Retries belong to the workflow's retry policy, not the SDK. pydantic-ai models expose their
        # provider's client read-only, so the provider's client is the one swapped.
        provider = getattr(built, "_provider", None)
        client = getattr(provider, "_client", None)
        if client is not None and hasattr(client, "with_options"):
            provider._client = client.with_options(**self._client_options())  # type: ignore[union-attr]
        return built

    async def _custom_model(self, model: str, conn: Any) -> Model:
        """A model from a registered provider factory, given this connection's fields."""
        from erp_agents.hooks.providers import model_provider

        factory = model_provider(self.provider.factory or "")
        return factory(model=model, connection=conn, options=self._client_options())

    def test_connection(self) -> tuple[bool, str]:
        """Costs nothing: checks only that the connection exists and has a key."""
        conn = self.get_connection(self.conn_id)
        if not conn.password and not (conn.extra_dejson or {}).get("auth_type"):
            return False, f"connection {self.conn_id!r} has no API key (password)"
        return True, f"connection {self.conn_id!r} is configured"
