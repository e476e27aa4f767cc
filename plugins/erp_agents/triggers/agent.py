"""AgentTrigger: one whole agent run inside the triggerer's event loop.

Started directly in the triggerer (``start_from_trigger``), it renders the prompt from upstream
XComs, runs a pydantic-ai Agent over GovernedModel (tools in threads, so the loop stays free) and
ends the task with ``TaskSuccessEvent`` carrying the output and the cost record: no worker at all.
Started from ``execute()`` (``airflow dags test`` or the worker fallback) it gets upstream outputs
and run context as kwargs and hands its result back to ``execute_complete``. Failures always go
back to ``execute_complete``, so Airflow sees a real exception with the provider's message.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent

from erp_agents.costs.pricing import price_usd, TokenCounts
from erp_agents.costs.record import COST_XCOM_KEY, CostRecord
from erp_agents.triggers.errors import classify
from erp_agents.triggers.runner import run_agent

CLASSPATH = "erp_agents.triggers.agent.AgentTrigger"


class AgentTrigger(BaseTrigger):
    """Runs one agent; kwargs are JSON-able and ``serialize()`` mirrors ``__init__``."""

    def __init__(
        self,
        *,
        payload: dict[str, Any],
        end_in_triggerer: bool = True,
        run: dict[str, Any] | None = None,
        upstream_outputs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.payload = payload
        self.end_in_triggerer = end_in_triggerer
        self.run_context = run
        self.upstream_outputs = upstream_outputs

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return CLASSPATH, {
            "payload": self.payload,
            "end_in_triggerer": self.end_in_triggerer,
            "run": self.run_context,
            "upstream_outputs": self.upstream_outputs,
        }

    def _new_record(self) -> CostRecord:
        agent = self.payload["agent"]
        return CostRecord(
            workflow=self.payload["workflow"],
            agent=agent["name"],
            module=agent["module"],
            provider=self.payload["provider_name"],
            model=agent["llm_config"]["model"],
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        record = self._new_record()
        try:
            self._check_price()
            run = self.run_context or self._run_from_task_instance()
            upstream = self.upstream_outputs
            if upstream is None:
                upstream = await self._pull_upstream_outputs(run)
            output = await run_agent(self.payload, run, upstream, record, log=self.log)
        except Exception as exc:  # every failure becomes an event, never a dead trigger
            failure = classify(exc)
            record.status, record.error = "failed", failure.message
            self.log.error("Agent %s failed (%s): %s", record.agent, failure.error_type, failure.message)
            yield TriggerEvent(
                {
                    "status": "error",
                    "retryable": failure.retryable,
                    "error_type": failure.error_type,
                    "message": failure.message,
                    "cost_record": record.to_dict(),
                }
            )
            return
        self.log.info(
            "Agent %s finished: %d calls, %d tokens, $%.6f",
            record.agent, record.calls, record.total_tokens, record.cost_usd,
        )
        result = {"output": output, "agent": record.agent, "model": record.model}
        if self.end_in_triggerer:
            yield TaskSuccessEvent(xcoms={"return_value": result, COST_XCOM_KEY: record.to_dict()})
        else:
            yield TriggerEvent({"status": "success", "result": result, "cost_record": record.to_dict()})

    def _check_price(self) -> None:
        """Refuse to start an agent whose model has no price: its calls would be counted as free."""
        price_usd(
            self.payload["agent"]["llm_config"]["model"],
            TokenCounts(1, 1),
            provider_type=self.payload["provider"]["type"],
            overrides=self.payload.get("price_overrides"),
        )

    def _run_from_task_instance(self) -> dict[str, Any]:
        """Run context in the triggerer, from the RuntimeTaskInstance it attached to this trigger."""
        ti = self.task_instance
        if ti is None:
            raise RuntimeError("AgentTrigger started without run context and without a task instance")
        return run_context(ti, ti.get_template_context())

    async def _pull_upstream_outputs(self, run: dict[str, Any]) -> dict[str, Any]:
        """Upstream outputs through the triggerer's XCom access (its supervisor serves GetXCom)."""
        from airflow.sdk.execution_time.xcom import XCom

        outputs = {}
        for name, task_id in self.payload["upstream"].items():
            value = await XCom.aget_one(
                key="return_value", dag_id=run["dag_id"], task_id=task_id, run_id=run["run_id"], map_index=-1
            )
            outputs[name] = agent_output(value)
        return outputs


def run_context(ti: Any, context: Any) -> dict[str, Any]:
    """The run's identity and params, JSON-able: what a prompt may use; built the same on both paths."""
    logical_date = context.get("logical_date")
    return {
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "map_index": ti.map_index,
        "try_number": ti.try_number,
        "logical_date": logical_date.isoformat() if logical_date else None,
        "ds": context.get("ds"),
        "params": dict(context.get("params") or {}),
    }


def agent_output(xcom_value: Any) -> Any:
    """The output inside an agent's ``return_value`` XCom.

    The XCom is always a dict ``{"output", "agent", "model"}``; pushed by a TaskSuccessEvent it comes
    back JSON-encoded, so a str is always an encoded dict and is decoded once: no guessing about
    outputs that merely look like JSON.
    """
    if xcom_value is None:
        return None
    if isinstance(xcom_value, str):
        xcom_value = json.loads(xcom_value)
    return xcom_value["output"]
