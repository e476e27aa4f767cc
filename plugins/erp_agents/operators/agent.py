"""LLMAgentOperator: thin. The agent runs in AgentTrigger; this class only says how to start it.

Under the scheduler the task starts in the triggerer (``start_from_trigger``) and ends there: no
worker process. ``execute()`` is the fallback used where a worker step is unavoidable:
``airflow dags test`` / ``dag.test()`` (they call execute() and run the deferred trigger inline) and
``start_from_trigger=False``. Both paths build the same trigger and run the same code.

A fan-out agent's chunks (mapped tasks, ``chunk_tasks``) start in the triggerer too: every chunk's
trigger has the same kwargs and reads its own chunk, by its map index, from the items step's XCom.

The agent's ``AgentInvocation`` is stored once, as the trigger kwargs of ``start_trigger_args``: the
triggerer deserializes the whole DAG for every trigger it starts, so nothing is stored twice.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException
from airflow.triggers.base import StartTriggerArgs

from erp_agents import exceptions
from erp_agents.contracts import AgentFailed, AgentInvocation, load_contract, load_event
from erp_agents.triggers.agent import CLASSPATH, AgentTrigger, run_context
from erp_agents.xcom import RETURN_VALUE_KEY, failure_xcoms, pull_agent_outputs, success_xcoms


class LLMAgentOperator(BaseOperator):
    """Run one LLM agent of a workflow spec.

    :param invocation: the agent's plan (spec, provider, prices, upstream task ids, limits, budgets).
    :param start_from_trigger: start in the triggerer (default) or on a worker.
    :param chunk: a fan-out agent's share of items (an ``ItemChunk``), given by ``.expand(chunk=...)``
        (see ``chunk_tasks``); read by ``execute()``, the worker path.
    """

    # The prompt is rendered by the trigger in a sandbox with upstream outputs as values, the same
    # way on both paths; Airflow's own templating of it would evaluate `agents.*` too early.
    template_fields = ()
    ui_color = "#e8f0fe"
    start_from_trigger = True

    def __init__(
        self,
        *,
        invocation: AgentInvocation | dict[str, Any] | str,
        start_from_trigger: bool = True,
        chunk: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.start_from_trigger = start_from_trigger
        self.chunk = chunk
        timeout: timedelta | None = self.execution_timeout
        typed = load_contract(AgentInvocation, invocation, f"invocation of task {self.task_id!r}")
        self.start_trigger_args = _start_trigger_args(typed.to_json(), self._failure_ending(), timeout)

    @classmethod
    def chunk_tasks(cls, *, items: Any, items_task_id: str, invocation: str, **partial_kwargs: Any) -> Any:
        """A fan-out agent's tasks: one mapped task per chunk of ``items`` (the items step's output).

        Each chunk starts in the triggerer like any agent: the scheduler defers a mapped task whose
        operator has ``start_from_trigger`` and ``start_trigger_args`` (Airflow 3.3 reads both off the
        serialized mapped operator, ``TaskInstance.defer_task``), but ``partial()`` accepts neither and
        their kwargs cannot differ per map index. So they are set on the mapped operator, and every
        chunk's trigger reads its own chunk by map index from ``items_task_id``'s XCom (``chunk_source``).
        Under ``dag.test()`` a chunk runs ``execute()`` with the chunk ``expand()`` gave it.
        tests/unit/factory/test_fan_out.py pins what the scheduler reads; tests/e2e/test_embedded.py runs it.
        """
        mapped = cls.partial(invocation=invocation, **partial_kwargs).expand(chunk=items)
        ending = {"task_retries": int(partial_kwargs.get("retries") or 0),
                  "end_failures_in_triggerer": not partial_kwargs.get("on_failure_callback")}
        mapped.start_from_trigger = True
        mapped.start_trigger_args = _start_trigger_args(
            invocation, {**ending, "chunk_source": items_task_id}, partial_kwargs.get("execution_timeout"))
        return mapped

    def _failure_ending(self) -> dict[str, Any]:
        """What the trigger needs to end a failure itself (``AgentTrigger._failed``)."""
        return {"task_retries": int(self.retries or 0), "end_failures_in_triggerer": not self.on_failure_callback}

    @cached_property
    def invocation(self) -> AgentInvocation:
        """The invocation, read back from the one place it is stored."""
        kwargs = (self.start_trigger_args.trigger_kwargs if self.start_trigger_args else None) or {}
        return load_contract(AgentInvocation, kwargs["invocation"], f"invocation of task {self.task_id!r}")

    def execute(self, context: Any) -> None:
        ti = context["ti"]
        invocation = self.invocation
        self.defer(
            trigger=AgentTrigger(
                invocation=invocation.to_json(),
                end_in_triggerer=not in_dag_test(context),
                run=run_context(ti, context).model_dump(mode="json"),
                upstream_outputs=pull_agent_outputs(ti, invocation.upstream, invocation.fan_out_upstream),
                chunk=self.chunk,
                **self._failure_ending(),
            ),
            method_name="execute_complete",
            timeout=self.execution_timeout,
        )

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> Any:
        """Finish on a worker: push the cost record, return the output or raise by the error's type."""
        try:
            typed = load_event(event)
        except exceptions.PermanentAgentError as exc:
            raise AirflowFailException(f"agent {self.task_id} ended without a readable result event: {exc}") from None
        # The same XComs as a task that ends in the triggerer; the return value is Airflow's to push.
        if isinstance(typed, AgentFailed):
            values = failure_xcoms(typed.cost_record, typed.items)
        else:
            kept = typed.transcripts if typed.transcripts is not None else typed.transcript
            values = success_xcoms(typed.result, typed.cost_record, kept, typed.items)
        for key, value in values.items():
            if key != RETURN_VALUE_KEY:
                context["ti"].xcom_push(key=key, value=value)
        if isinstance(typed, AgentFailed):
            raise airflow_error(typed, self.task_id)
        return values[RETURN_VALUE_KEY]


def _start_trigger_args(invocation: str, kwargs: dict[str, Any], timeout: timedelta | None) -> StartTriggerArgs:
    """How the scheduler starts an agent's trigger: the stored invocation plus how the trigger ends."""
    return StartTriggerArgs(
        trigger_cls=CLASSPATH,
        trigger_kwargs={"invocation": invocation, "end_in_triggerer": True, **kwargs},
        next_method="execute_complete",
        next_kwargs=None,
        timeout=timeout,
    )


# ``DAG.test()`` marks its runs so (Airflow 3.3; tests/unit/operators pins it).
DAG_TEST_USER = "dag_test"


def in_dag_test(context: Any) -> bool:
    """``dag.test()`` runs the trigger inline and hands its event to ``execute_complete``, so the task
    must end there. Anywhere else a success ends the task in the triggerer: a fan-out chunk that
    started on a worker does not take a worker slot and a new task process again just to finish."""
    return getattr(context.get("dag_run"), "triggering_user_name", None) == DAG_TEST_USER


def airflow_error(event: AgentFailed, task_id: str) -> Exception:
    """The exception Airflow sees: permanent types fail the task, every other one is retried."""
    message = f"agent {task_id} failed ({event.error_type}): {event.message}"
    if exceptions.is_permanent(event.error_type):
        return AirflowFailException(message)
    retryable: type[Exception] = exceptions.AgentRetryableError
    return retryable(message)
