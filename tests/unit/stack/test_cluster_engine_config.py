"""The cluster's engine.yaml: the user's engine config with the limiter's windows moved to Redis."""

from __future__ import annotations

from erp_agents.spec.loader import load_spec_text
from erp_agents.spec.models import EngineConfig, LimiterConfig, RateLimitConfig
from erp_agents.stack.cluster_settings import LIMITER_NAMESPACE, engine_config, engine_config_yaml

REDIS = "redis://127.0.0.1:6380/2"


def test_the_cluster_sets_where_the_windows_live_and_keeps_the_rest_of_the_limiter() -> None:
    base = EngineConfig(limiter=LimiterConfig(lease_seconds=15, namespace="mine"),
                        rate_limit_config=RateLimitConfig(requests_per_minute=120))
    config = load_spec_text(engine_config_yaml(REDIS, base), "engine.yaml")
    assert isinstance(config, EngineConfig)
    assert config.limiter == LimiterConfig(backend="redis", url=REDIS, namespace=LIMITER_NAMESPACE, lease_seconds=15)
    assert config.rate_limit_config == base.rate_limit_config


def test_without_a_base_the_cluster_limiter_has_the_default_lease() -> None:
    limiter = engine_config(REDIS).limiter
    assert (limiter.backend, limiter.url, limiter.lease_seconds) == ("redis", REDIS, 60.0)
