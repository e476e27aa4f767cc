"""LLMAgentOperator: thin. The agent runs in AgentTrigger; this class only says how to start it.

Under the scheduler the task starts in the triggerer (``start_from_trigger``) and ends there: no
worker process. ``execute()`` is the fallback used where a worker step is unavoidable:
``airflow dags test`` / ``dag.test()`` (they call execute() and run the deferred trigger inline) and
``start_from_trigger=False``. Both paths build the same trigger and run the same code.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.triggers.base import StartTriggerArgs

from erp_agents.costs.record import COST_XCOM_KEY
from erp_agents.triggers.agent import CLASSPATH, AgentTrigger, agent_output, run_context


class AgentRetryableError(AirflowException):
    """The agent failed in a way a later attempt may not (429, 5xx, timeout): Airflow retries it."""


class LLMAgentOperator(BaseOperator):
    """Run one LLM agent of a workflow spec.

    :param payload: the agent's plan (spec, provider, prices, upstream task ids); JSON-able.
    :param start_from_trigger: start in the triggerer (default) or on a worker.
    """

    # The prompt is rendered by the trigger in a sandbox with upstream outputs as values, the same
    # way on both paths; Airflow's own templating of it would evaluate `agents.*` too early.
    template_fields = ()
    ui_color = "#e8f0fe"
    start_from_trigger = True

    def __init__(self, *, payload: dict[str, Any], start_from_trigger: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.payload = payload
        self.start_from_trigger = start_from_trigger
        timeout: timedelta | None = self.execution_timeout
        self.start_trigger_args = StartTriggerArgs(
            trigger_cls=CLASSPATH,
            trigger_kwargs={"payload": payload, "end_in_triggerer": True},
            next_method="execute_complete",
            next_kwargs=None,
            timeout=timeout,
        )

    def execute(self, context: Any) -> None:
        ti = context["ti"]
        upstream = {
            name: agent_output(ti.xcom_pull(task_ids=task_id, key="return_value"))
            for name, task_id in self.payload["upstream"].items()
        }
        run = run_context(ti, context)
        self.defer(
            trigger=AgentTrigger(payload=self.payload, end_in_triggerer=False, run=run, upstream_outputs=upstream),
            method_name="execute_complete",
            timeout=self.execution_timeout,
        )

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> Any:
        """Finish on a worker: push the cost record, return the output or raise with the server's message."""
        if not isinstance(event, dict) or "status" not in event:
            raise AirflowFailException(f"agent {self.task_id} ended without a result event: {event!r}")
        context["ti"].xcom_push(key=COST_XCOM_KEY, value=event.get("cost_record"))
        if event["status"] == "success":
            return event["result"]
        message = f"agent {self.task_id} failed ({event.get('error_type')}): {event.get('message')}"
        if event.get("retryable"):
            raise AgentRetryableError(message)
        raise AirflowFailException(message)
