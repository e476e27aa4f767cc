"""workflow_summary keeps every agent's output in one XCom, and the engine reads a run from it:
plain agents by task id, a fan-out agent as its chunks' outputs joined in item order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from erp_agents.contracts import AgentOutput, SummaryAgent, SummaryPlan
from erp_agents.costs.record import CostRecord
from erp_agents.engine import OrchestrationEngine
from erp_agents.exceptions import ErpAgentsError
from erp_agents.operators import summary as summary_module
from erp_agents.operators.summary import WorkflowSummaryOperator
from erp_agents.xcom import CHUNK_SIZES_XCOM_KEY, COST_XCOM_KEY, OUTPUTS_XCOM_KEY, RETURN_VALUE_KEY, run_outputs_from_xcom

PLAN = SummaryPlan(workflow="wf", allow_partial_completion=True, agents={
    "finance.lister": SummaryAgent(name="lister", critical=False),
    "finance.reviewer": SummaryAgent(name="reviewer", critical=False, items_task_id="finance.reviewer__items"),
    "finance.failed": SummaryAgent(name="failed", critical=False),
})


def _output(value: Any, agent: str) -> dict[str, Any]:
    return AgentOutput(output=value, agent=agent, model="m").model_dump(mode="json")


def _record(agent: str) -> dict[str, Any]:
    return CostRecord(workflow="wf", agent=agent, module="Finance", provider="p", model="m").to_dict()


class FakeTI:
    """The XComs a run left: two chunks of three and two items, an agent that pushed no output."""

    dag_id, run_id = "wf", "run-1"

    def __init__(self) -> None:
        self.store: dict[tuple[str, str, int], Any] = {
            ("finance.lister", RETURN_VALUE_KEY, -1): _output(["a", "b", "c", "d", "e"], "lister"),
            ("finance.lister", COST_XCOM_KEY, -1): _record("lister"),
            ("finance.reviewer__items", CHUNK_SIZES_XCOM_KEY, -1): [3, 2],
            ("finance.reviewer", RETURN_VALUE_KEY, 0): _output(["r1", "r2", "r3"], "reviewer"),
            ("finance.reviewer", RETURN_VALUE_KEY, 1): '{"schema_version": 1, "output": ["r4", "r5"], "agent": "reviewer", "model": "m"}',
            ("finance.failed", COST_XCOM_KEY, -1): _record("failed"),
        }
        self.pushed: dict[str, Any] = {}
        self.one_by_one: list[tuple[str, str, int]] = []

    def get_task_states(self, **_: Any) -> dict[str, Any]:
        return {"run-1": {"finance.lister": "success", "finance.reviewer_0": "success",
                          "finance.reviewer_1": "success", "finance.failed": "failed"}}

    def xcom_pull(self, *, task_ids: str, key: str, map_indexes: int) -> Any:
        return self.store.get((task_ids, key, map_indexes))

    # As the triggerer's reader gets them: one at a time from summarize()'s thread, or read ahead.
    in_flight = peak_in_flight = 0

    def read_one(self, task_id: str, key: str, map_index: int) -> Any:
        self.one_by_one.append((task_id, key, map_index))
        return self.store.get((task_id, key, map_index))

    def xcom_push(self, *, key: str, value: Any) -> None:
        self.pushed[key] = value


def test_the_summary_keeps_every_output_and_a_fan_out_in_item_order(monkeypatch):
    monkeypatch.setattr(summary_module, "ledger_check", lambda plan, ti, outcomes, log: None)
    ti = FakeTI()
    summary = WorkflowSummaryOperator(task_id="workflow_summary", summary=PLAN).execute({"ti": ti})
    assert summary["status"] == "partial"
    assert run_outputs_from_xcom(ti.pushed[OUTPUTS_XCOM_KEY]) == {
        "finance.lister": ["a", "b", "c", "d", "e"],
        "finance.reviewer": ["r1", "r2", "r3", "r4", "r5"],
        "finance.failed": None,
    }


class FakeApi:
    def __init__(self, xcoms: dict[tuple[str, str], Any]) -> None:
        self.xcoms, self.asked = xcoms, []

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = RETURN_VALUE_KEY) -> Any:
        self.asked.append((task_id, key))
        return self.xcoms.get((task_id, key))


def _engine_with(api: FakeApi) -> OrchestrationEngine:
    engine = OrchestrationEngine(url="http://airflow.invalid")
    engine._api = api  # type: ignore[assignment]
    return engine


def test_the_engine_reads_a_run_in_two_requests(monkeypatch):
    monkeypatch.setattr(summary_module, "ledger_check", lambda plan, ti, outcomes, log: None)
    ti = FakeTI()
    summary = WorkflowSummaryOperator(task_id="workflow_summary", summary=PLAN).execute({"ti": ti})
    api = FakeApi({("workflow_summary", RETURN_VALUE_KEY): summary,
                   ("workflow_summary", OUTPUTS_XCOM_KEY): ti.pushed[OUTPUTS_XCOM_KEY]})
    result = _engine_with(api).read_result("wf", "run-1")
    assert result.agent_results["reviewer"].output == ["r1", "r2", "r3", "r4", "r5"]
    assert result.agent_results["failed"].output is None and result.agent_results["failed"].state == "failed"
    assert api.asked == [("workflow_summary", RETURN_VALUE_KEY), ("workflow_summary", OUTPUTS_XCOM_KEY)]


def test_a_summary_without_outputs_names_the_plugin_version_gap(monkeypatch):
    monkeypatch.setattr(summary_module, "ledger_check", lambda plan, ti, outcomes, log: None)
    summary = WorkflowSummaryOperator(task_id="workflow_summary", summary=PLAN).execute({"ti": FakeTI()})
    with pytest.raises(ErpAgentsError, match="older than this client"):
        _engine_with(FakeApi({("workflow_summary", RETURN_VALUE_KEY): summary})).read_result("wf", "run-1")


def _events(trigger) -> list:
    import asyncio

    async def collect():
        return [e async for e in trigger.run()]

    return asyncio.run(collect())


def _summary_trigger(monkeypatch, ti: FakeTI, plan: SummaryPlan = PLAN):
    """The operator's own trigger, its SDK reads answered from ``ti``'s XComs."""
    from types import SimpleNamespace

    from erp_agents.triggers.summary import SummaryTrigger, TriggererRunReader

    monkeypatch.setattr(summary_module, "ledger_check", lambda plan, ti, outcomes, log: None)
    monkeypatch.setattr(TriggererRunReader, "get_task_states", lambda self, **kw: ti.get_task_states(**kw))
    monkeypatch.setattr(TriggererRunReader, "get_xcom", lambda self, task_id, key, map_index: ti.read_one(task_id, key, map_index))

    async def aget_xcom(self, task_id: str, key: str, map_index: int) -> Any:
        ti.in_flight += 1
        ti.peak_in_flight = max(ti.peak_in_flight, ti.in_flight)
        await asyncio.sleep(0.01)  # the supervisor's answer
        ti.in_flight -= 1
        return ti.store.get((task_id, key, map_index))

    monkeypatch.setattr(TriggererRunReader, "aget_xcom", aget_xcom)
    operator = WorkflowSummaryOperator(task_id="workflow_summary", summary=plan)
    assert operator.start_from_trigger is True
    args = operator.start_trigger_args
    assert args.trigger_cls == "erp_agents.triggers.summary.SummaryTrigger"
    trigger = SummaryTrigger(**args.trigger_kwargs)
    trigger.task_instance = SimpleNamespace(dag_id="wf", run_id="run-1", task_id="workflow_summary", task=None)
    return trigger


def test_in_the_triggerer_the_summary_ends_its_task_with_both_xcoms(monkeypatch):
    from airflow.triggers.base import TaskSuccessEvent

    [event] = _events(_summary_trigger(monkeypatch, FakeTI()))
    assert isinstance(event, TaskSuccessEvent)
    assert event.xcoms[RETURN_VALUE_KEY]["status"] == "partial"
    assert run_outputs_from_xcom(event.xcoms[OUTPUTS_XCOM_KEY])["finance.reviewer"] == ["r1", "r2", "r3", "r4", "r5"]


def test_in_the_triggerer_plain_agents_are_read_ahead_together_and_a_fan_out_one_by_one(monkeypatch):
    ti = FakeTI()
    [event] = _events(_summary_trigger(monkeypatch, ti))
    assert event.xcoms[RETURN_VALUE_KEY]["status"] == "partial"
    # two plain agents, each a cost record and an output, asked for at once
    assert ti.peak_in_flight == 4
    # only the fan-out agent's chunk reads went one by one through summarize()'s thread
    assert {task_id for task_id, _, _ in ti.one_by_one} == {"finance.reviewer", "finance.reviewer__items"}


def test_in_the_triggerer_a_failed_read_ahead_falls_back_to_reading_one_by_one(monkeypatch):
    from erp_agents.triggers.summary import TriggererRunReader

    ti = FakeTI()
    trigger = _summary_trigger(monkeypatch, ti)

    async def lost(self, task_id: str, key: str, map_index: int) -> Any:
        raise ConnectionError("supervisor gone")

    monkeypatch.setattr(TriggererRunReader, "aget_xcom", lost)
    [event] = _events(trigger)
    assert event.xcoms[RETURN_VALUE_KEY]["status"] == "partial"
    assert ("finance.lister", COST_XCOM_KEY, -1) in ti.one_by_one


def test_in_the_triggerer_a_failed_workflow_fails_the_task_with_its_summary(monkeypatch):
    from airflow.triggers.base import TaskFailedEvent

    strict = PLAN.model_copy(update={"allow_partial_completion": False})
    [event] = _events(_summary_trigger(monkeypatch, FakeTI(), strict))
    assert isinstance(event, TaskFailedEvent)
    assert event.xcoms[RETURN_VALUE_KEY]["status"] == "failed" and OUTPUTS_XCOM_KEY in event.xcoms


def test_a_workflow_with_partial_notices_sums_up_on_a_worker():
    """Notifiers take a worker's task context; the trigger kwargs never carry a notifier's URL."""
    from erp_agents.spec.models import Notifications

    noisy = PLAN.model_copy(update={"notifications": Notifications(on_partial=[{"type": "webhook", "url": "https://hooks.example/T0K3N"}])})
    assert WorkflowSummaryOperator(task_id="workflow_summary", summary=noisy).start_from_trigger is False
    quiet = PLAN.model_copy(update={"notifications": Notifications(on_run_failure=[{"type": "webhook", "url": "https://hooks.example/T0K3N"}])})
    operator = WorkflowSummaryOperator(task_id="workflow_summary", summary=quiet)
    assert operator.start_from_trigger is True and "T0K3N" not in operator.start_trigger_args.trigger_kwargs["plan"]


def test_in_the_triggerer_an_unreadable_plan_fails_the_task_before_any_read(monkeypatch):
    from types import SimpleNamespace

    from airflow.triggers.base import TaskFailedEvent

    from erp_agents.triggers.summary import SummaryTrigger

    ti = FakeTI()
    _summary_trigger(monkeypatch, ti)  # the reader's reads answered (and counted) from ti
    trigger = SummaryTrigger(plan="{not json")
    trigger.task_instance = SimpleNamespace(dag_id="wf", run_id="run-1", task_id="workflow_summary", task=None)
    [event] = _events(trigger)
    assert isinstance(event, TaskFailedEvent) and event.xcoms == {}
    assert ti.peak_in_flight == 0 and ti.one_by_one == []
