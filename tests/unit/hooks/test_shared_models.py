"""Agents of one process share the connection read, the SDK client and its pools; keys stay masked."""

from __future__ import annotations

import asyncio
import json

import pytest
from airflow.sdk.log import redact

from erp_agents.hooks import model_hook, shared
from erp_agents.hooks.model_hook import POOL_SHARDS, AgentModelHook
from erp_agents.limits.estimate import tokenizer_loaded
from erp_agents.spec.models import ProviderConfig
from include.llm_simulator.testing import running_simulator

KEY = "sk-shared-models-4d1f9a"


@pytest.fixture(autouse=True)
def fresh_caches():
    shared.clear_model_cache()
    yield
    shared.clear_model_cache()


def set_connection(monkeypatch: pytest.MonkeyPatch, host: str, key: str = KEY, conn_id: str = "sim_openai") -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}",
                       json.dumps({"conn_type": "openai", "host": host, "password": key}))


async def models_of(provider: ProviderConfig, n: int, model: str = "gpt-4o-mini") -> list:
    async def one():
        async with AgentModelHook(provider).model(model) as built:
            return built
    return await asyncio.gather(*(one() for _ in range(n)))


def test_many_agents_share_pools_and_the_client_outlives_each_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "http://127.0.0.1:9/v1")
    reads = []
    real_read = AgentModelHook.aget_connection

    async def counting_read(self, conn_id):
        reads.append(conn_id)
        return await real_read(conn_id)

    monkeypatch.setattr(AgentModelHook, "aget_connection", counting_read)
    provider = ProviderConfig(type="openai", conn_id="sim_openai", request_timeout=7.0)

    async def scenario():
        built = await models_of(provider, 3 * POOL_SHARDS)
        pools = {id(m.client._client) for m in built}
        assert len({id(m) for m in built}) == POOL_SHARDS == len(pools)  # each shard model has its own pool
        assert all(not m.client.is_closed() for m in built)  # an agent's exit closes nothing shared
        assert {m.client.max_retries for m in built} == {0}
        assert {m.client.timeout for m in built} == {7.0}
        limits = built[0].client._client._transport._pool
        assert limits._max_connections >= 500 and limits._max_keepalive_connections >= 500
        # every pool verifies TLS with the one context of the process
        assert {id(m.client._client._transport._pool._ssl_context) for m in built} == {id(await shared.tls_context())}

    asyncio.run(scenario())
    assert reads == ["sim_openai"]  # one connection read for 48 agents
    assert tokenizer_loaded()


def test_a_changed_connection_gets_a_new_client_after_the_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shared, "CONNECTION_TTL_S", 0.0)
    monkeypatch.setattr(model_hook, "POOL_SHARDS", 1)
    provider = ProviderConfig(type="openai", conn_id="sim_openai")

    async def scenario():
        set_connection(monkeypatch, "http://127.0.0.1:9/v1", key="sk-old-key-111111")
        [old] = await models_of(provider, 1)
        [same] = await models_of(provider, 1)
        set_connection(monkeypatch, "http://127.0.0.1:9/v1", key="sk-new-key-222222")
        [new] = await models_of(provider, 1)
        return old, same, new

    old, same, new = asyncio.run(scenario())
    assert same is old
    assert new is not old and new.client.api_key == "sk-new-key-222222"
    # both keys were registered with the masker when read
    assert "sk-old-key-111111" not in redact("old sk-old-key-111111") and "sk-new-key-222222" not in redact("sk-new-key-222222")


def test_other_models_and_options_do_not_share(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "http://127.0.0.1:9/v1")
    monkeypatch.setattr(model_hook, "POOL_SHARDS", 1)

    async def scenario():
        [a] = await models_of(ProviderConfig(type="openai", conn_id="sim_openai"), 1, "gpt-4o-mini")
        [b] = await models_of(ProviderConfig(type="openai", conn_id="sim_openai"), 1, "gpt-4o")
        [c] = await models_of(ProviderConfig(type="openai", conn_id="sim_openai", openai_api="responses"), 1)
        [d] = await models_of(ProviderConfig(type="openai", conn_id="sim_openai", request_timeout=3.0), 1)
        return a, b, c, d

    a, b, c, d = asyncio.run(scenario())
    assert (a.model_name, b.model_name) == ("gpt-4o-mini", "gpt-4o")
    assert type(c).__name__ == "OpenAIResponsesModel" and type(a).__name__ == "OpenAIChatModel"
    assert d.client.timeout == 3.0 and a.client.timeout == 120.0


def test_anthropic_models_share_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SIM_ANTHROPIC",
                       json.dumps({"conn_type": "anthropic", "host": "http://127.0.0.1:9", "password": KEY}))
    provider = ProviderConfig(type="anthropic", conn_id="sim_anthropic")
    built = asyncio.run(models_of(provider, POOL_SHARDS + 1, "claude-sonnet-4-5"))
    assert built[0] is built[-1] and built[0].client.max_retries == 0
    assert KEY not in redact(f"key {KEY}")


def test_concurrent_agents_get_answers_over_shared_pools(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real requests: 40 agents at once, one connection read, every request carries the key."""
    from pydantic_ai import Agent

    provider = ProviderConfig(type="openai", conn_id="sim_openai")
    with running_simulator(latency=0.2, api_key=KEY) as sim:
        set_connection(monkeypatch, sim.openai_base_url)

        async def one(i: int) -> str:
            async with AgentModelHook(provider).model("gpt-4o-mini") as built:
                return (await Agent(built).run(f"item {i}")).output

        async def scenario():
            first = await asyncio.gather(*(one(i) for i in range(40)))
            second = await asyncio.gather(*(one(i) for i in range(40)))  # the pools are still open
            return first + second

        outputs = asyncio.run(scenario())
        assert len(outputs) == 80 and all(outputs)
        assert len(sim.requests()) == 80


def test_an_agent_connection_gets_its_own_client_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two agents of one provider on two connections (accounts) never share a client."""
    monkeypatch.setattr(model_hook, "POOL_SHARDS", 1)
    set_connection(monkeypatch, "http://127.0.0.1:9/v1", key="sk-provider-key-333333")
    set_connection(monkeypatch, "http://127.0.0.1:9/v1", key="sk-agent-key-444444", conn_id="team_b_openai")
    provider = ProviderConfig(type="openai", conn_id="sim_openai")

    async def scenario():
        async with AgentModelHook(provider).model("gpt-4o-mini") as default:
            pass
        async with AgentModelHook(provider, conn_id="team_b_openai").model("gpt-4o-mini") as own:
            pass
        return default, own

    default, own = asyncio.run(scenario())
    assert AgentModelHook(provider, conn_id="team_b_openai").conn_id == "team_b_openai"
    assert AgentModelHook(provider, conn_id=None).conn_id == "sim_openai"
    assert own is not default and own.client is not default.client
    assert (default.client.api_key, own.client.api_key) == ("sk-provider-key-333333", "sk-agent-key-444444")
