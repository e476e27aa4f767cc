"""The monitoring settings in effect: ``MonitorConfig`` of the deployment's EngineConfig spec."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from erp_agents.spec.models import EngineConfig, MonitorConfig


@lru_cache(maxsize=1)
def engine_config() -> EngineConfig:
    """$ERP_AGENTS_ENGINE_CONFIG, else the EngineConfig under ``<dags_folder>/specs``, else the defaults."""
    from erp_agents.spec.discovery import ENGINE_CONFIG_ENV, load_folder
    from erp_agents.spec.loader import load_spec_file

    if path := os.environ.get(ENGINE_CONFIG_ENV):
        spec = load_spec_file(path)
        return spec if isinstance(spec, EngineConfig) else EngineConfig()
    from airflow.configuration import conf

    return load_folder(Path(conf.get("core", "dags_folder")) / "specs").engine


def monitor_config() -> MonitorConfig:
    """The MonitorConfig in effect (a broken engine config spec raises its SpecError)."""
    return engine_config().monitor_config
