"""``sync_pools`` against Airflow's real API server: one pool per provider, idempotent, corrected when
the config changes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from erp_agents.limits.pools import pool_for, sync_pools, wanted_pools
from erp_agents.spec.models import EngineConfig
from erp_agents.stack.settings import Layout
from tests.stack import AirflowStack, airflow_stack


def _config(openai_slots: int) -> EngineConfig:
    return EngineConfig.model_validate({
        "rate_limit_config": {"concurrent_requests": 7},
        "providers": {
            "openai": {"type": "openai", "conn_id": "openai_default",
                       "rate_limit_config": {"concurrent_requests": openai_slots}},
            "anthropic": {"type": "anthropic", "conn_id": "anthropic_default", "pool": "claude_calls"},
        },
    })


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    home: Path = tmp_path_factory.mktemp("pools")
    env = {"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True"}
    Layout(home).logs.mkdir(parents=True, exist_ok=True)
    with airflow_stack(home, extra_env=env, components=("api-server",),
                       sql_alchemy_conn=f"sqlite:///{home / 'airflow.db'}") as running:
        yield running


def test_pool_names() -> None:
    config = _config(5)
    assert pool_for("openai", config) == "llm_openai"
    assert pool_for("anthropic", config) == "claude_calls"
    assert wanted_pools(config)["llm_openai"]["slots"] == 5
    assert wanted_pools(config)["claude_calls"]["slots"] == 7  # the engine-wide limit applies


def test_sync_creates_then_leaves_then_corrects(stack: AirflowStack) -> None:
    base = f"http://127.0.0.1:{stack.api_port}"
    token = httpx.get(f"{base}/auth/token", timeout=30).json()["access_token"]
    assert sorted(sync_pools(base, token, _config(5))) == ["created claude_calls", "created llm_openai"]
    assert sorted(sync_pools(base, token, _config(5))) == ["unchanged claude_calls", "unchanged llm_openai"]
    assert sorted(sync_pools(base, token, _config(9))) == ["unchanged claude_calls", "updated llm_openai"]
    pool = httpx.get(f"{base}/api/v2/pools/llm_openai", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert pool.json()["slots"] == 9 and pool.json()["include_deferred"] is True
