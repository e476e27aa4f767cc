"""Notifications for agent failures, failed runs and partially completed runs, as Airflow notifiers.

A workflow's ``notifications`` names targets per event; ``callbacks_for(workflow.notifications)`` builds Airflow
notifier objects for them, which render wires in as Airflow callbacks:

* ``agent_on_failure_callback``: the agent tasks' ``on_failure_callback`` (an agent ran out of
  retries: in-call and task retries both spent, or a permanent error), and through ``for_agent``
  a fan-out agent's items step's (its source was refused: the agent's chunk tasks never run);
* ``dag_on_failure_callback``: the DAG's ``on_failure_callback`` (the run failed: a critical
  agent, the budget or the timeout ended it);
* ``on_partial``: sent by ``workflow_summary`` through ``notify_partial`` when the run completed
  partially (non-critical agents failed), since Airflow has no callback for that outcome.

``smtp`` uses the SMTP provider's ``SmtpNotifier`` (connection ``conn_id`` or
``[smtp] smtp_conn_id``); ``webhook`` posts one JSON document with httpx to ``url`` or to the
host of the HTTP connection ``conn_id`` (its password, if any, is sent as a bearer token and
nowhere else). Messages carry ids, states and the error text passed through Airflow's secrets
masker and truncated; never connection fields or prompts.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypedDict

import httpx
from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk import BaseNotifier

from erp_agents.runtime.redact import airflow_mask, truncate
from erp_agents.spec.models import Notifications, NotifierSpec

log = logging.getLogger(__name__)

Event = Literal["agent_failure", "run_failure", "partial"]
SCHEMA_VERSION = 1
WEBHOOK_TIMEOUT = 10.0
FAILED_AGENTS_KEY = "erp_failed_agents"
_TITLES: dict[str, str] = {
    "agent_failure": "agent failed",
    "run_failure": "workflow run failed",
    "partial": "workflow run completed partially",
}


def event_payload(event: Event, context: Mapping[str, Any]) -> dict[str, Any]:
    """What a notification says, from an Airflow callback context; JSON-able and free of secrets."""
    dag = context.get("dag")
    dag_run = context.get("dag_run")
    ti = context.get("ti") or context.get("task_instance")
    error = context.get("exception") or context.get("reason")
    failed = context.get(FAILED_AGENTS_KEY)
    return {
        "schema_version": SCHEMA_VERSION,
        "event": event,
        "title": _TITLES[event],
        "dag_id": getattr(dag, "dag_id", None) or getattr(dag_run, "dag_id", None) or getattr(ti, "dag_id", None),
        "run_id": getattr(dag_run, "run_id", None) or context.get("run_id") or getattr(ti, "run_id", None),
        "task_id": getattr(ti, "task_id", None) if event == "agent_failure" else None,
        "map_index": getattr(ti, "map_index", None) if event == "agent_failure" else None,
        "try_number": getattr(ti, "try_number", None) if event == "agent_failure" else None,
        "error": truncate(airflow_mask(str(error))) if error else None,
        "failed_agents": sorted(str(agent) for agent in failed) if failed else [],
    }


def _summary_line(payload: Mapping[str, Any]) -> str:
    where = payload["task_id"] or ", ".join(payload["failed_agents"]) or ""
    return f"[erp-agents] {payload['dag_id']}: {payload['title']}" + (f": {where}" if where else "")


def _html(payload: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><th align='left'>{html.escape(key)}</th><td>{html.escape(str(value))}</td></tr>"
        for key, value in payload.items() if value not in (None, [], "")
    )
    return f"<p>{html.escape(_summary_line(payload))}</p><table>{rows}</table>"


class AgentSmtpNotifier(SmtpNotifier):
    """The SMTP provider's notifier with our subject and body for ``event`` (built from the context, not Jinja)."""

    def __init__(self, *, event: Event, to: str, smtp_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(to=to, smtp_conn_id=smtp_conn_id, subject="erp-agents", html_content="", **kwargs)
        self.event: Event = event

    def _set_message(self, context: Any) -> None:
        payload = event_payload(self.event, context)
        self.subject = _summary_line(payload)
        self.html_content = _html(payload)

    def notify(self, context: Any) -> None:
        self._set_message(context)
        super().notify(context)

    async def async_notify(self, context: Any) -> None:
        self._set_message(context)
        await super().async_notify(context)


class WebhookNotifier(BaseNotifier):
    """POSTs the event as JSON to a URL (or an HTTP connection's host); a non-2xx answer is an error."""

    template_fields = ("url",)

    def __init__(self, *, event: Event, url: str | None = None, conn_id: str | None = None,
                 timeout: float = WEBHOOK_TIMEOUT) -> None:
        super().__init__()
        if not (url or conn_id):
            raise ValueError("a webhook notifier needs url or conn_id")
        self.event: Event = event
        self.url = url
        self.conn_id = conn_id
        self.timeout = timeout

    def _target(self) -> tuple[str, dict[str, str]]:
        """URL and headers; a connection is read only when a notification is sent, never at parse time."""
        if self.url:
            return self.url, {}
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(str(self.conn_id))
        host = conn.host or ""
        if "://" not in host:
            scheme = conn.schema or "https"
            host = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
        endpoint = str(conn.extra_dejson.get("endpoint", "")).lstrip("/")
        headers = {"authorization": f"Bearer {conn.password}"} if conn.password else {}
        return host.rstrip("/") + (f"/{endpoint}" if endpoint else ""), headers

    def notify(self, context: Any) -> None:
        url, headers = self._target()
        response = httpx.post(url, json=event_payload(self.event, context), headers=headers, timeout=self.timeout)
        response.raise_for_status()

    async def async_notify(self, context: Any) -> None:
        url, headers = self._target()
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            response = await client.post(url, json=event_payload(self.event, context), headers=headers)
        response.raise_for_status()


def notifier_for(spec: NotifierSpec, event: Event) -> BaseNotifier:
    """The Airflow notifier for one spec target."""
    if spec.type == "smtp":
        return AgentSmtpNotifier(event=event, to=str(spec.to), smtp_conn_id=spec.conn_id)
    return WebhookNotifier(event=event, url=spec.url, conn_id=spec.conn_id)


class WorkflowCallbacks(TypedDict):
    """Notifiers per place they are wired in (empty lists when the workflow names none)."""

    agent_on_failure_callback: list[BaseNotifier]
    dag_on_failure_callback: list[BaseNotifier]
    on_partial: list[BaseNotifier]


def callbacks_for(spec: Notifications | None) -> WorkflowCallbacks:
    """Notifier objects for a workflow's ``notifications`` (no I/O: safe at parse time)."""
    if spec is None:
        return WorkflowCallbacks(agent_on_failure_callback=[], dag_on_failure_callback=[], on_partial=[])
    return WorkflowCallbacks(
        agent_on_failure_callback=[notifier_for(n, "agent_failure") for n in spec.on_agent_failure],
        dag_on_failure_callback=[notifier_for(n, "run_failure") for n in spec.on_run_failure],
        on_partial=[notifier_for(n, "partial") for n in spec.on_partial],
    )


class AgentStepNotifier:
    """An agent's failure notifier on a task of the agent that is not its agent task (a fan-out's
    items step, whose failure leaves the chunk tasks ``upstream_failed``, which no callback sees).
    The notice is the agent failure's own; ``failed_agents`` names the agent, ``task_id`` the step."""

    def __init__(self, notifier: BaseNotifier, agent_task_id: str) -> None:
        self.notifier = notifier
        self.agent_task_id = agent_task_id

    def __call__(self, context: Mapping[str, Any]) -> None:
        self.notifier({**context, FAILED_AGENTS_KEY: [self.agent_task_id]})


def for_agent(notifiers: Iterable[BaseNotifier], agent_task_id: str) -> list[AgentStepNotifier]:
    """The ``agent_on_failure_callback`` notifiers for a step of agent ``agent_task_id``."""
    return [AgentStepNotifier(notifier, agent_task_id) for notifier in notifiers]


def notify_partial(notifiers: Iterable[BaseNotifier], context: Mapping[str, Any],
                   failed_agents: Iterable[str]) -> int:
    """Send the partial-completion notices from ``workflow_summary``; returns how many were sent.

    A notifier that fails is logged and skipped: a lost notice must not change the run's outcome.
    """
    merged = {**context, FAILED_AGENTS_KEY: sorted(failed_agents)}
    sent = 0
    for notifier in notifiers:
        try:
            notifier(merged)
        except Exception:
            log.exception("partial-completion notification via %s failed", type(notifier).__name__)
        else:
            sent += 1
    return sent
