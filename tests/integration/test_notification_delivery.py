"""Notifications reach a real local SMTP server and a real local HTTP server, through Airflow's notifiers."""

from __future__ import annotations

import asyncio
import email
import json
import threading
from collections.abc import Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from airflow.sdk import DAG

from erp_agents.notifications import callbacks_for, notify_partial
from erp_agents.spec.models import Agent, Notifications, Workflow
from include.llm_simulator.testing import free_port

SECRET = "conn-password-not-key-shaped"


class _Inbox:
    """aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), email.message_from_bytes(envelope.content)))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_sink(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Inbox]:
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        monkeypatch.setenv("AIRFLOW_CONN_ERP_TEST_SMTP", json.dumps({
            "conn_type": "smtp", "host": "127.0.0.1", "port": port, "login": "", "password": "",
            "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "erp-agents@example.com",
                      "timeout": 5, "retry_limit": 1}}))
        yield inbox
    finally:
        controller.stop()


class _Hook(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, str], dict[str, Any]]] = []

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        type(self).received.append((self.path, dict(self.headers.items()), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def http_sink() -> Iterator[tuple[str, list[tuple[str, dict[str, str], dict[str, Any]]]]]:
    _Hook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Hook.received
    finally:
        server.shutdown()
        server.server_close()


def _workflow(notifications: dict[str, Any]) -> Notifications | None:
    return Workflow(name="nightly", agents=[Agent(name="a", llm_config={"model": "gpt-4o-mini"}, prompt_template="x")],
                    notifications=notifications).notifications


def _context(**extra: Any) -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="nightly", run_id="r1", task_id="Finance.ledger", map_index=-1, try_number=1)
    return {"dag": DAG("nightly", schedule=None), "dag_run": SimpleNamespace(dag_id="nightly", run_id="r1"),
            "ti": ti, **extra}


def test_agent_failure_email_reaches_the_smtp_server(smtp_sink: _Inbox) -> None:
    from airflow.sdk.log import mask_secret

    mask_secret(SECRET)
    notifier = callbacks_for(_workflow({"on_agent_failure": [
        {"type": "smtp", "to": "ops@example.com", "conn_id": "erp_test_smtp"}]}))["agent_on_failure_callback"][0]
    notifier(_context(exception=RuntimeError(f"HTTP 503: service unavailable; key {SECRET}")))
    assert len(smtp_sink.messages) == 1
    sender, recipients, message = smtp_sink.messages[0]
    assert (sender, recipients) == ("erp-agents@example.com", ["ops@example.com"])
    assert message["Subject"] == "[erp-agents] nightly: agent failed: Finance.ledger"
    html = next(part for part in message.walk() if part.get_content_type() == "text/html")
    text = html.get_payload(decode=True).decode()
    assert "HTTP 503: service unavailable" in text and SECRET not in text and "r1" in text


def test_partial_completion_email_names_the_failed_agents(smtp_sink: _Inbox) -> None:
    notifiers = callbacks_for(_workflow({"on_partial": [
        {"type": "smtp", "to": "finance@example.com", "conn_id": "erp_test_smtp"}]}))["on_partial"]
    assert notify_partial(notifiers, _context(), ["HR.b", "Finance.a"]) == 1
    message = smtp_sink.messages[0][2]
    assert message["Subject"] == "[erp-agents] nightly: workflow run completed partially: Finance.a, HR.b"


def test_run_failure_webhook_posts_json(http_sink: tuple[str, list[Any]]) -> None:
    url, received = http_sink
    notifier = callbacks_for(_workflow({"on_run_failure": [{"type": "webhook", "url": url + "/hooks/erp"}]}))[
        "dag_on_failure_callback"][0]
    notifier(_context(reason="task_failure"))
    path, headers, body = received[0]
    assert path == "/hooks/erp" and "authorization" not in {k.lower() for k in headers}
    assert body == {"schema_version": 1, "event": "run_failure", "title": "workflow run failed", "dag_id": "nightly",
                    "run_id": "r1", "task_id": None, "map_index": None, "try_number": None, "error": "task_failure",
                    "failed_agents": []}


def test_webhook_through_a_connection_sends_its_password_only_as_the_bearer_token(
        http_sink: tuple[str, list[Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    url, received = http_sink
    host = url.removeprefix("http://")
    monkeypatch.setenv("AIRFLOW_CONN_ERP_TEST_HOOK", json.dumps({
        "conn_type": "http", "host": host.split(":")[0], "port": int(host.split(":")[1]), "schema": "http",
        "password": SECRET, "extra": {"endpoint": "/alerts"}}))
    notifier = callbacks_for(_workflow({"on_agent_failure": [{"type": "webhook", "conn_id": "erp_test_hook"}]}))[
        "agent_on_failure_callback"][0]
    asyncio.run(_await(notifier, _context(exception=ValueError("HTTP 400: bad request"))))
    path, headers, body = received[0]
    assert path == "/alerts" and headers["authorization"] == f"Bearer {SECRET}"
    assert body["event"] == "agent_failure" and body["error"] == "HTTP 400: bad request"
    assert SECRET not in json.dumps(body)


async def _await(notifier: Any, context: dict[str, Any]) -> None:
    notifier.context = context
    await notifier


def test_a_webhook_that_answers_an_error_raises(http_sink: tuple[str, list[Any]]) -> None:
    notifier = callbacks_for(_workflow({"on_run_failure": [{"type": "webhook", "url": "http://127.0.0.1:9/x"}]}))[
        "dag_on_failure_callback"][0]
    with pytest.raises(httpx.HTTPError):
        notifier(_context(reason="timed out"))
