"""AgentTrigger: one whole agent run inside the triggerer's event loop.

Started directly in the triggerer (``start_from_trigger``), it renders the prompt from upstream
XComs, runs a pydantic-ai Agent over GovernedModel (tools in threads, so the loop stays free) and
ends the task with ``TaskSuccessEvent`` carrying the output and the cost record: no worker at all.
Started from ``execute()`` (``airflow dags test`` or the worker fallback) it gets upstream outputs
and run context as kwargs and hands its result back to ``execute_complete``. Every failure,
including unreadable kwargs, goes back to ``execute_complete`` as an ``AgentFailed`` event, so
Airflow sees a real exception of the right type with the provider's (masked) message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TaskFailedEvent, TaskSuccessEvent, TriggerEvent

from erp_agents.contracts import (
    AgentFailed,
    AgentInvocation,
    AgentOutput,
    AgentSucceeded,
    ItemChunk,
    ItemResult,
    ItemTranscript,
    RunContext,
    load_contract,
)
from erp_agents.costs.record import CostRecord
from erp_agents.exceptions import AgentRunError, is_permanent
from erp_agents.limits.agent_slots import agent_slot
from erp_agents.monitoring import metrics
from erp_agents.monitoring.outcome import merged_record
from erp_agents.triggers.transcripts import transcript
from erp_agents.xcom import apull_agent_outputs, apull_chunk, apush_cost_record, failure_xcoms, success_xcoms

CLASSPATH = "erp_agents.triggers.agent.AgentTrigger"
CANCEL_PUSH_TIMEOUT_S = 10.0


class AgentTrigger(BaseTrigger):
    """Runs one agent; kwargs are JSON-able and ``serialize()`` mirrors ``__init__``.

    What runs the agent (pydantic-ai, the providers, the governance stores) is imported in ``run()``:
    DAG files import this module through the operator, and the dag-processor and every worker task
    parse them (about 1 s of CPU each, for what only the triggerer needs).

    :param invocation: the ``AgentInvocation`` as stored in the serialized DAG (its JSON text).
    :param end_in_triggerer: end the task here (TaskSuccessEvent) or hand back to ``execute_complete``.
    :param task_retries: the task's Airflow ``retries``: with none left to avoid, a permanent failure
        ends here too (see ``_failed``).
    :param end_failures_in_triggerer: ``False`` when the task has failure callbacks, which run on the
        worker path.
    :param run: the ``RunContext`` when started from ``execute()``; else read from the task instance.
    :param upstream_outputs: upstream outputs by agent name when started from ``execute()``.
    :param chunk: the ``ItemChunk`` of a fan-out agent's mapped task: its items run concurrently.
    :param chunk_source: instead of ``chunk``, when the chunk started in the triggerer: the items step's
        task id, which keeps each chunk in an XCom of its own; this task's map index picks its own.
    """

    def __init__(
        self,
        *,
        invocation: str | dict[str, Any],
        end_in_triggerer: bool = True,
        run: dict[str, Any] | None = None,
        upstream_outputs: dict[str, Any] | None = None,
        chunk: dict[str, Any] | None = None,
        chunk_source: str | None = None,
        task_retries: int = 0,
        end_failures_in_triggerer: bool = False,
    ) -> None:
        super().__init__()
        self.chunk = chunk
        self.chunk_source = chunk_source
        self.task_retries = task_retries
        self.end_failures_in_triggerer = end_failures_in_triggerer
        self.raw_invocation = invocation
        self.end_in_triggerer = end_in_triggerer
        self.run_context = run
        self.upstream_outputs = upstream_outputs
        # Validated here; an unreadable invocation is reported by run() as this task's permanent error.
        self.invocation: AgentInvocation | None = None
        self.invalid: AgentRunError | None = None
        try:
            self.invocation = load_contract(AgentInvocation, invocation, "AgentTrigger invocation")
        except AgentRunError as exc:
            self.invalid = exc

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs = {
            "invocation": self.raw_invocation,
            "end_in_triggerer": self.end_in_triggerer,
            "run": self.run_context,
            "upstream_outputs": self.upstream_outputs,
            "task_retries": self.task_retries,
            "end_failures_in_triggerer": self.end_failures_in_triggerer,
        }
        if self.chunk is not None:  # only fan-out chunks carry it: stored kwargs of other agents stay as they were
            kwargs["chunk"] = self.chunk
        if self.chunk_source is not None:
            kwargs["chunk_source"] = self.chunk_source
        return CLASSPATH, kwargs

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from erp_agents.triggers.errors import as_agent_error, is_expected, mask_value
        from erp_agents.triggers.runner import run_agent

        if self.chunk is not None or self.chunk_source is not None:
            async for event in self._run_chunk():
                yield event
            return
        record = _record_for(self.invocation)
        run: RunContext | None = None
        started = time.monotonic()
        try:
            if self.invalid is not None:
                raise self.invalid
            assert self.invocation is not None
            run = self._run()
            upstream = self.upstream_outputs
            if upstream is None:
                upstream = await apull_agent_outputs(run, self.invocation.upstream, self.invocation.fan_out_upstream)
            prompt: list[str] = []
            async with agent_slot(self.invocation, run, log=self.log):
                output = await run_agent(self.invocation, run, upstream, record, log=self.log, prompt_out=prompt)
        except asyncio.CancelledError:
            record.status, record.error = "cancelled", "the run was cancelled (timeout or task killed)"
            await self._report_cancelled(run, record)
            raise
        except Exception as exc:  # every failure becomes an event, never a dead trigger
            error = as_agent_error(exc)
            record.status, record.error, record.error_type = "failed", str(error), type(error).__name__
            self.log.error("Agent %s failed (%s): %s", record.agent, type(error).__name__, error,
                           exc_info=not is_expected(exc))
            _record_agent(record, time.monotonic() - started, "failed")
            yield self._failed(AgentFailed(error_type=type(error).__name__, message=str(error), cost_record=record))
            return
        self.log.info(
            "Agent %s finished: %d calls, %d tokens, $%.6f",
            record.agent, record.calls, record.total_tokens, record.cost_usd,
        )
        _record_agent(record, time.monotonic() - started, "success")
        # A model can repeat what it was sent, a key included: outputs pass the masker like logs do.
        result = AgentOutput(output=mask_value(output), agent=record.agent, model=record.model)
        kept = transcript(prompt[0], output) if self.invocation.log_prompts and prompt else None
        if self.end_in_triggerer:
            yield TaskSuccessEvent(xcoms=success_xcoms(result, record, kept))
        else:
            yield TriggerEvent(AgentSucceeded(result=result, cost_record=record, transcript=kept).model_dump(mode="json"))

    async def _run_chunk(self) -> AsyncIterator[TriggerEvent]:
        """A fan-out chunk: one result and one cost record per item; the task fails only when all did."""
        from erp_agents.triggers.errors import as_agent_error, is_expected
        from erp_agents.triggers.fanout import run_chunk

        records: list[CostRecord] = []
        run: RunContext | None = None
        started = time.monotonic()
        try:
            if self.invalid is not None:
                raise self.invalid
            assert self.invocation is not None
            run = self._run()
            raw_chunk = self.chunk if self.chunk is not None else await apull_chunk(run, str(self.chunk_source))
            chunk = load_contract(ItemChunk, raw_chunk, "AgentTrigger chunk")
            upstream = self.upstream_outputs
            if upstream is None:
                upstream = await apull_agent_outputs(run, self.invocation.upstream, self.invocation.fan_out_upstream)
            transcripts: list[ItemTranscript] | None = [] if self.invocation.log_prompts else None
            async with agent_slot(self.invocation, run, log=self.log):
                items = await run_chunk(self.invocation, run, upstream, chunk, records, log=self.log,
                                        transcripts=transcripts)
        except asyncio.CancelledError:
            record = merged_record(records, _record_for(self.invocation))
            record.status, record.error = "cancelled", "the run was cancelled (timeout or task killed)"
            await self._report_cancelled(run, record)
            raise
        except Exception as exc:
            error = as_agent_error(exc)
            record = merged_record(records, _record_for(self.invocation))
            record.status, record.error, record.error_type = "failed", str(error), type(error).__name__
            self.log.error("Agent %s chunk failed (%s): %s", record.agent, type(error).__name__, error,
                           exc_info=not is_expected(exc))
            yield self._failed(AgentFailed(error_type=type(error).__name__, message=str(error), cost_record=record))
            return
        yield self._chunk_event(items, records, time.monotonic() - started, transcripts)

    def _chunk_event(self, items: list[ItemResult], records: list[CostRecord], duration_s: float,
                     transcripts: list[ItemTranscript] | None = None) -> TriggerEvent:
        assert self.invocation is not None
        record = merged_record(records, _record_for(self.invocation))
        failed = [i for i in items if i.status == "failed"]
        self.log.info("Agent %s chunk finished: %d items ok, %d failed, %d calls, $%.6f",
                      record.agent, len(items) - len(failed), len(failed), record.calls, record.cost_usd)
        if items and len(failed) == len(items):
            first = failed[0]
            record.status, record.error, record.error_type = "failed", first.error, first.error_type
            _record_agent(record, duration_s, "failed")
            message = f"all {len(items)} items failed; item {first.index}: {first.error}"
            return self._failed(AgentFailed(error_type=first.error_type or "TransientAgentError", message=message,
                                            cost_record=record, items=items))
        _record_agent(record, duration_s, "success")
        result = AgentOutput(output=[i.output for i in items], agent=record.agent, model=record.model)
        if self.end_in_triggerer:
            return TaskSuccessEvent(xcoms=success_xcoms(result, record, transcripts, items))
        return TriggerEvent(AgentSucceeded(result=result, cost_record=record, items=items,
                                           transcripts=transcripts).model_dump(mode="json"))

    def _failed(self, failed: AgentFailed) -> TriggerEvent:
        """Where a failed agent ends. In the triggerer, with no worker process, whenever Airflow's own
        handling of a failed task is right: a retryable error (Airflow retries the task if it has
        retries left, as it would on a worker), or any error of a task without retries. A permanent
        error of a task with retries left must not be retried: our triggerer's supervisor ends it
        without one (``stack.triggerer.end_permanent_failures_here``); under any other triggerer
        only ``AirflowFailException`` on a worker can, so it resumes ``execute_complete``, as every
        failure under ``dag.test()`` or of a task with failure callbacks does. So a refused or failed
        agent no longer waits for a worker slot only to be marked failed."""
        if self.end_in_triggerer and self.end_failures_in_triggerer and (
                not is_permanent(failed.error_type) or self.task_retries == 0 or _triggerer_ends_permanent_failures()):
            return TaskFailedEvent(xcoms=failure_xcoms(failed.cost_record, failed.items))
        return TriggerEvent(failed.model_dump(mode="json"))

    def _run(self) -> RunContext:
        if self.run_context is not None:
            return load_contract(RunContext, self.run_context, "AgentTrigger run context")
        ti = self.task_instance
        if ti is None:
            raise RuntimeError("AgentTrigger started without run context and without a task instance")
        return run_context(ti, ti.get_template_context())

    async def _report_cancelled(self, run: RunContext | None, record: CostRecord) -> None:
        """A cancelled run still reports what it spent: its cost record goes to XCom."""
        self.log.warning("Agent %s cancelled after %d calls, $%.6f", record.agent, record.calls, record.cost_usd)
        if run is None:
            return
        try:
            await asyncio.wait_for(apush_cost_record(run, record), CANCEL_PUSH_TIMEOUT_S)
        except Exception:
            self.log.exception("Agent %s: could not push the cost record of the cancelled run", record.agent)



def _triggerer_ends_permanent_failures() -> bool:
    """Whether this process runs under our triggerer entry point with the no-retry ending applied."""
    import sys

    entry = sys.modules.get("erp_agents.stack.triggerer")
    return bool(getattr(entry, "ENDS_PERMANENT_FAILURES", False))


def _record_agent(record: CostRecord, duration_s: float, state: str) -> None:
    metrics.record_agent(workflow=record.workflow, module=record.module, model=record.model, provider=record.provider,
                         duration_s=duration_s, state=state)


def _record_for(invocation: AgentInvocation | None) -> CostRecord:
    if invocation is None:
        return CostRecord(workflow="", agent="", module="", provider="", model="")
    return CostRecord(
        workflow=invocation.workflow,
        agent=invocation.agent.name,
        module=invocation.agent.module,
        provider=invocation.provider_name,
        model=invocation.model,
    )


def run_context(ti: Any, context: Any) -> RunContext:
    """The run's identity and params: what a prompt may use; built the same on both paths."""
    logical_date = context.get("logical_date")
    return RunContext(
        dag_id=ti.dag_id,
        run_id=ti.run_id,
        task_id=ti.task_id,
        map_index=ti.map_index,
        try_number=ti.try_number,
        logical_date=logical_date.isoformat() if logical_date else None,
        ds=context.get("ds"),
        params=dict(context.get("params") or {}),
        run_started_at=_iso(getattr(context.get("dag_run"), "start_date", None)),
    )


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


# Kept for callers that have not moved to the codec yet; ``erp_agents.xcom`` is the one place.
from erp_agents.xcom import agent_output as agent_output  # noqa: E402
