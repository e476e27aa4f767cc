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


def test_an_init_step_writes_the_same_pools_into_the_metadata_db(stack: AirflowStack, tmp_path: Path) -> None:
    """What docker-compose's airflow-init runs before the api-server: `pools sync --in-metadata-db`."""
    import subprocess
    import sys

    from erp_agents.stack.bundle_files import spec_yaml
    from tests.conftest import ROOT

    config = tmp_path / "engine.yaml"
    config.write_text(spec_yaml(_config(4).model_copy(update={"providers": {
        **_config(4).providers, "anthropic": _config(4).providers["anthropic"].model_copy(update={"pool": "claude_init"})}})))
    done = subprocess.run([sys.executable, "-m", "erp_agents", "pools", "sync", "--in-metadata-db"], cwd=ROOT, text=True,
                          env={**stack.env, "ERP_AGENTS_ENGINE_CONFIG": str(config)}, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(done.stdout.split("\n")[-3:-1]) == ["set claude_init (7 slots)", "set llm_openai (4 slots)"]
    base = f"http://127.0.0.1:{stack.api_port}"
    token = httpx.get(f"{base}/auth/token", timeout=30).json()["access_token"]
    pool = httpx.get(f"{base}/api/v2/pools/claude_init", headers={"Authorization": f"Bearer {token}"}, timeout=30).json()
    assert (pool["slots"], pool["include_deferred"]) == (7, True)
