"""SummaryTrigger: ``workflow_summary`` in the triggerer, so a run needs no worker process.

It runs the same ``summarize()`` the operator runs on a worker, in a thread, against a stand-in for
the task instance whose reads go through the trigger runner's supervisor: Airflow's sync SDK calls,
made off the event loop's thread, are bridged to it (``TriggerCommsDecoder.send``). The ledger check
is a blocking database query, so the thread also keeps it off the loop that runs the agents. The
task ends here: success with the summary and the agents' outputs as XComs, or failure (a failed
workflow) with them, as ``AirflowFailException`` ends it on a worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from airflow.sdk.exceptions import AirflowFailException
from airflow.triggers.base import BaseTrigger, TaskFailedEvent, TaskSuccessEvent, TriggerEvent

from erp_agents.contracts import SummaryPlan, load_contract
from erp_agents.xcom import COST_XCOM_KEY, RETURN_VALUE_KEY

CLASSPATH = "erp_agents.triggers.summary.SummaryTrigger"
UNDECIDED = "workflow_summary could not decide the run's outcome"


class TriggererRunReader:
    """What ``summarize()`` reads and writes of its task instance, from a thread in the triggerer.

    Reads are Airflow's own SDK calls; pushes are kept and handed to the ending event, which the
    supervisor writes with the task's new state in one go.
    """

    def __init__(self, dag_id: str, run_id: str) -> None:
        self.dag_id, self.run_id = dag_id, run_id
        self.pushed: dict[str, Any] = {}
        self.read: dict[tuple[str, str, int], Any] = {}  # (task id, key, map index) -> value, read ahead

    async def read_ahead(self, task_ids: list[str], log: Any) -> None:
        """Every plain agent's cost record and output, asked for all at once.

        ``summarize()`` reads them one after another, and each read is a round trip through the
        trigger runner's supervisor, which answers between its own database passes: about 60 ms each
        on a loaded 2-core machine, 5.7 s for a run of 50 agents. Requests on the runner's channel
        are multiplexed, so the supervisor answers these in a few turns. A read that fails here is
        read again, one by one, by ``summarize()``.
        """
        wanted = [(task_id, key, -1) for task_id in task_ids for key in (COST_XCOM_KEY, RETURN_VALUE_KEY)]
        try:
            values = await asyncio.gather(*(self.aget_xcom(*each) for each in wanted))
        except Exception as exc:  # noqa: BLE001 (the one-by-one reads report it if it persists)
            log.warning("Could not read the run's XComs ahead (%s); reading them one by one", exc)
            return
        self.read.update(zip(wanted, values))

    async def aget_xcom(self, task_id: str, key: str, map_index: int) -> Any:
        from airflow.sdk.execution_time.xcom import XCom

        return await XCom.aget_one(key=key, dag_id=self.dag_id, task_id=task_id, run_id=self.run_id,
                                   map_index=map_index)

    def get_xcom(self, task_id: str, key: str, map_index: int) -> Any:
        from airflow.sdk.execution_time.xcom import XCom

        return XCom.get_one(key=key, dag_id=self.dag_id, task_id=task_id, run_id=self.run_id, map_index=map_index)

    def get_task_states(self, *, dag_id: str, task_ids: list[str], run_ids: list[str]) -> dict[str, Any]:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        return RuntimeTaskInstance.get_task_states(dag_id=dag_id, task_ids=task_ids, run_ids=run_ids)

    def xcom_pull(self, *, task_ids: str, key: str, map_indexes: int) -> Any:
        wanted = (task_ids, key, map_indexes)
        if wanted in self.read:
            return self.read[wanted]
        return self.get_xcom(*wanted)

    def xcom_push(self, *, key: str, value: Any) -> None:
        self.pushed[key] = value


async def end_step(step: Callable[[], Any], reader: TriggererRunReader, log: Any, what: str) -> TriggerEvent:
    """Run a worker-style ``step`` in a thread and end its task here, with what it pushed (and what it
    returned, if anything, as the return value); ``AirflowFailException`` fails the task as on a worker."""
    try:
        value = await asyncio.to_thread(step)
    except AirflowFailException as exc:
        log.error("%s", exc)
        return TaskFailedEvent(xcoms=reader.pushed)
    except Exception:
        log.exception("%s", what)
        return TaskFailedEvent(xcoms=reader.pushed)
    return TaskSuccessEvent(xcoms=reader.pushed if value is None else {**reader.pushed, RETURN_VALUE_KEY: value})


class SummaryTrigger(BaseTrigger):
    """Decide a run's outcome in the triggerer. :param plan: the ``SummaryPlan`` as JSON text."""

    def __init__(self, *, plan: str) -> None:
        super().__init__()
        self.plan = plan

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return CLASSPATH, {"plan": self.plan}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from erp_agents.operators.summary import summarize

        ti = self.task_instance
        if ti is None:
            raise RuntimeError("SummaryTrigger runs only as a task started in the triggerer")
        reader = TriggererRunReader(ti.dag_id, ti.run_id)
        try:
            plan = load_contract(SummaryPlan, self.plan, "SummaryTrigger plan")
        except Exception:  # as end_step() ends a step that raises: logged, the task fails
            self.log.exception(UNDECIDED)
            yield TaskFailedEvent(xcoms=reader.pushed)
            return
        await reader.read_ahead([task_id for task_id, agent in plan.agents.items() if not agent.items_task_id],
                                self.log)

        def decide() -> dict[str, Any]:  # a failed workflow raises: the summary is pushed, the task fails
            return summarize(plan, reader, self.log)

        yield await end_step(decide, reader, self.log, UNDECIDED)
