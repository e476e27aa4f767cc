"""ItemsTrigger: a fan-out agent's items step in the triggerer, so its chunks wait for no worker.

It runs the operator's own ``resolve_items()`` in a thread (a tool call or an upstream's output, then
the chunks), with the same stand-in task instance as ``SummaryTrigger``, except that pushes are written
at once. The return value is written with its length (``XCom.set(_mapped_length=...)``): that is what
records the scheduler's task map, from which it expands the mapped chunk tasks; Airflow does this for
a worker's return value, not for the XComs of a ``TaskSuccessEvent``. Every XCom is written before
the task succeeds, so a chunk never starts before its share is there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TaskFailedEvent, TriggerEvent

from erp_agents.contracts import FanOut, load_contract
from erp_agents.triggers.summary import TriggererRunReader, end_step
from erp_agents.xcom import RETURN_VALUE_KEY

CLASSPATH = "erp_agents.triggers.items.ItemsTrigger"


class WritingRunReader(TriggererRunReader):
    """Reads as ``TriggererRunReader``; every push is written to XCom at once, as this task's."""

    def __init__(self, dag_id: str, run_id: str, task_id: str) -> None:
        super().__init__(dag_id, run_id)
        self.task_id = task_id

    def xcom_push(self, *, key: str, value: Any, mapped_length: int | None = None) -> None:
        from airflow.sdk.execution_time.xcom import XCom

        XCom.set(key, value, dag_id=self.dag_id, task_id=self.task_id, run_id=self.run_id, map_index=-1,
                 _mapped_length=mapped_length)


class ItemsTrigger(BaseTrigger):
    """Resolve a fan-out's items in the triggerer; kwargs mirror ``ForEachItemsOperator``'s."""

    def __init__(self, *, fan_out: str, record: dict[str, Any], upstream: dict[str, str],
                 fan_out_upstream: list[str], end_failures_in_triggerer: bool = True) -> None:
        super().__init__()
        self.fan_out, self.record, self.upstream, self.fan_out_upstream = fan_out, record, upstream, fan_out_upstream
        self.end_failures_in_triggerer = end_failures_in_triggerer

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs: dict[str, Any] = {"fan_out": self.fan_out, "record": self.record, "upstream": self.upstream,
                                  "fan_out_upstream": self.fan_out_upstream}
        if not self.end_failures_in_triggerer:  # only steps with failure callbacks carry it
            kwargs["end_failures_in_triggerer"] = False
        return CLASSPATH, kwargs

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from erp_agents.operators.for_each import resolve_items

        ti = self.task_instance
        if ti is None:
            raise RuntimeError("ItemsTrigger runs only as a task started in the triggerer")
        reader = WritingRunReader(ti.dag_id, ti.run_id, ti.task_id)

        def resolve() -> None:
            fan_out = load_contract(FanOut, self.fan_out, "ItemsTrigger fan_out")
            chunks = resolve_items(fan_out, self.record, self.upstream, tuple(self.fan_out_upstream), reader, self.log)
            reader.xcom_push(key=RETURN_VALUE_KEY, value=chunks, mapped_length=len(chunks))

        # A refused source raises AirflowFailException: its cost record is written, the task fails.
        event = await end_step(resolve, reader, self.log, "the items step could not resolve its items")
        if isinstance(event, TaskFailedEvent) and not self.end_failures_in_triggerer:
            # The step has failure callbacks (on_agent_failure): it fails on the worker, where they get
            # the error, as an agent task's do (``execute_complete`` resolves again and raises).
            event = TriggerEvent({"status": "error"})
        yield event
