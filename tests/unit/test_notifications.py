"""Notifier objects from the spec, and what a notification says."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk import DAG, BaseNotifier

from erp_agents.notifications import (
    AgentSmtpNotifier,
    WebhookNotifier,
    _html,
    callbacks_for,
    event_payload,
    notify_partial,
)
from erp_agents.spec.models import Agent, Notifications, Workflow


def _workflow(notifications: dict | None) -> Notifications | None:
    return Workflow(name="w", agents=[Agent(name="a", llm_config={"model": "gpt-4o-mini"}, prompt_template="x")],
                    notifications=notifications).notifications


def _context(**extra) -> dict:
    ti = SimpleNamespace(dag_id="nightly", run_id="r1", task_id="Finance.ledger", map_index=-1, try_number=2)
    return {"dag": DAG("nightly", schedule=None), "dag_run": SimpleNamespace(dag_id="nightly", run_id="r1"),
            "ti": ti, **extra}


def test_callbacks_for_builds_airflow_notifiers_per_event() -> None:
    callbacks = callbacks_for(_workflow({
        "on_agent_failure": [{"type": "smtp", "to": "ops@example.com", "conn_id": "smtp_ops"},
                             {"type": "webhook", "url": "http://hook.test/x"}],
        "on_run_failure": [{"type": "webhook", "conn_id": "alerts"}],
        "on_partial": [{"type": "smtp", "to": "finance@example.com"}],
    }))
    agent, run, partial = (callbacks["agent_on_failure_callback"], callbacks["dag_on_failure_callback"],
                           callbacks["on_partial"])
    assert [type(n) for n in agent] == [AgentSmtpNotifier, WebhookNotifier]
    assert isinstance(agent[0], SmtpNotifier) and all(isinstance(n, BaseNotifier) for n in agent + run + partial)
    assert (agent[0].to, agent[0].smtp_conn_id, agent[0].event) == ("ops@example.com", "smtp_ops", "agent_failure")
    assert (agent[1].url, agent[1].event) == ("http://hook.test/x", "agent_failure")
    assert (run[0].conn_id, run[0].url, run[0].event) == ("alerts", None, "run_failure")
    assert [n.event for n in partial] == ["partial"]


def test_no_notifications_means_empty_lists() -> None:
    assert callbacks_for(_workflow(None)) == {"agent_on_failure_callback": [], "dag_on_failure_callback": [],
                                              "on_partial": []}


def test_payload_of_an_agent_failure_is_masked_and_truncated() -> None:
    from airflow.sdk.log import mask_secret

    secret = "plain-words-secret-99881"
    mask_secret(secret)
    payload = event_payload("agent_failure", _context(exception=RuntimeError(f"HTTP 401 for key {secret}" + "z" * 900)))
    assert payload["dag_id"] == "nightly" and payload["task_id"] == "Finance.ledger" and payload["try_number"] == 2
    assert secret not in payload["error"] and "HTTP 401 for key" in payload["error"] and len(payload["error"]) < 560
    assert payload["failed_agents"] == [] and payload["schema_version"] == 1


def test_payload_of_run_failure_and_partial() -> None:
    run = event_payload("run_failure", _context(reason="task_failure"))
    assert (run["event"], run["task_id"], run["error"], run["run_id"]) == ("run_failure", None, "task_failure", "r1")
    partial = event_payload("partial", _context(erp_failed_agents=["HR.b", "Finance.a"]))
    assert partial["failed_agents"] == ["Finance.a", "HR.b"] and partial["title"] == "workflow run completed partially"


def test_html_escapes_what_the_provider_said() -> None:
    body = _html(event_payload("agent_failure", _context(exception=ValueError("<script>alert(1)</script>"))))
    assert "<script>" not in body and "&lt;script&gt;" in body


def test_notify_partial_survives_a_failing_notifier(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(BaseNotifier):
        def notify(self, context):
            raise ConnectionError("sink down")

    class Recording(BaseNotifier):
        seen: list = []

        def notify(self, context):
            self.seen.append(event_payload("partial", context)["failed_agents"])

    recording = Recording()
    assert notify_partial([Broken(), recording], _context(), ["x.b", "x.a"]) == 1
    assert recording.seen == [["x.a", "x.b"]] and "partial-completion notification via Broken failed" in caplog.text


def test_webhook_needs_a_target() -> None:
    with pytest.raises(ValueError, match="url or conn_id"):
        WebhookNotifier(event="partial")


def test_the_example_spec_loads_and_names_notifiers_for_every_event() -> None:
    from pathlib import Path

    from erp_agents.spec.loader import load_spec_file

    example = Path(__file__).resolve().parents[2] / "include" / "notifications_example" / "month_end_with_alerts.yaml"
    callbacks = callbacks_for(load_spec_file(example).notifications)
    assert {key: [type(n).__name__ for n in value] for key, value in callbacks.items()} == {
        "agent_on_failure_callback": ["WebhookNotifier"],
        "dag_on_failure_callback": ["AgentSmtpNotifier", "WebhookNotifier"],
        "on_partial": ["AgentSmtpNotifier"]}
