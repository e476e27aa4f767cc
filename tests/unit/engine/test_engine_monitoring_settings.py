"""An engine's MonitorConfig: the status window is its own; metrics settings are the deployment's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from erp_agents.engine import OrchestrationEngine
from erp_agents.exceptions import ErpAgentsError
from erp_agents.spec.models import EngineConfig, MonitorConfig


def _deployment_engine(dags: Path, text: str) -> str:
    (dags / "specs").mkdir(parents=True)
    (dags / "specs" / "engine.yaml").write_text("kind: EngineConfig\nversion: 1\n" + text)
    return str(dags)


def test_metrics_settings_the_deployment_would_ignore_are_refused(tmp_path):
    dags = _deployment_engine(tmp_path, "monitor_config: {metrics_prefix: acme}\n")
    engine = OrchestrationEngine(EngineConfig(monitor_config=MonitorConfig(enabled=False)), url="http://x.invalid")
    with pytest.raises(ErpAgentsError, match=r"monitor_config.enabled is False here, True there; "
                                             r"monitor_config.metrics_prefix is 'erp_agents' here, 'acme' there"):
        engine._check_monitoring(dags)


def test_the_same_metrics_settings_or_no_config_pass(tmp_path):
    dags = _deployment_engine(tmp_path, "monitor_config: {metrics_prefix: acme, status_window_hours: 6}\n")
    same = EngineConfig(monitor_config=MonitorConfig(metrics_prefix="acme", status_window_hours=48))
    OrchestrationEngine(same, url="http://x.invalid")._check_monitoring(dags)
    OrchestrationEngine(url="http://x.invalid")._check_monitoring(dags)  # the deployment's own, whatever it is


class Status:
    def __init__(self) -> None:
        self.windows: list[Any] = []

    def get_system_status(self, window_hours: float | None) -> dict[str, Any]:
        self.windows.append(window_hours)
        return {}


@pytest.mark.parametrize(("config", "asked", "sent"), [
    (EngineConfig(monitor_config=MonitorConfig(status_window_hours=48)), None, 48),
    (EngineConfig(monitor_config=MonitorConfig(status_window_hours=48)), 2, 2),
    (None, None, None),  # no config given: the deployment's own window
])
def test_the_status_window_is_the_engines_own(monkeypatch, config, asked, sent):
    engine = OrchestrationEngine(config, url="http://x.invalid")
    status = Status()
    monkeypatch.setattr(engine, "_status_client", lambda: status)
    engine.get_system_status(asked)
    assert status.windows == [sent]
