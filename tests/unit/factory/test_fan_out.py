"""Fan-out agents: the plan, the rendered mapped task, chunking and the items step's refusals."""

from __future__ import annotations

import pytest

from erp_agents.contracts import AgentInvocation, load_contract
from erp_agents.exceptions import PermanentAgentError
from erp_agents.factory.plan import plan_workflow
from erp_agents.factory.render import render_dag
from erp_agents.operators.for_each import checked_items, chunks_of
from erp_agents.spec.models import Agent, ForEach, LLMConfig, Notifications, NotifierSpec, Workflow

LLM = LLMConfig(model="gpt-4o-mini")


def _wf(**reviewer) -> Workflow:
    return Workflow(name="wf", agents=[
        Agent(name="lister", module="Finance", llm_config=LLM, prompt_template="list"),
        Agent(name="reviewer", module="Finance", llm_config=LLM, prompt_template="{{ item }}",
              dependencies=["lister"], **reviewer),
        Agent(name="writer", module="Finance", llm_config=LLM, prompt_template="{{ agents.reviewer.output }}",
              dependencies=["reviewer"]),
    ])


def test_plan_marks_the_fan_out_agent_and_its_readers():
    plan = plan_workflow(_wf(for_each=ForEach(agent="lister"), chunk_size=20, max_items=100))
    lister, reviewer, writer = plan.tasks
    assert (lister.fan_out, reviewer.fan_out, writer.fan_out) == (False, True, False)
    assert reviewer.items_local_id == "reviewer__items"
    fan_out = reviewer.invocation.fan_out
    assert (fan_out.items_task_id, fan_out.agent, fan_out.tool, fan_out.chunk_size, fan_out.max_items) == (
        "finance.reviewer__items", "lister", None, 20, 100)
    assert writer.invocation.fan_out_upstream == ("reviewer",)
    assert reviewer.invocation.fan_out_upstream == ()
    assert plan.summary.agents["finance.reviewer"].items_task_id == "finance.reviewer__items"
    assert plan.summary.agents["finance.writer"].items_task_id is None


def test_render_maps_the_agent_over_the_items_step():
    dag = render_dag(plan_workflow(_wf(for_each=ForEach(tool="finance.list_open_invoices", arguments={"type": "AR"}))))
    items, reviewer = dag.get_task("finance.reviewer__items"), dag.get_task("finance.reviewer")
    assert type(items).__name__ == "ForEachItemsOperator" and type(reviewer).__name__ == "MappedOperator"
    assert items.upstream_task_ids == {"finance.lister"}
    assert reviewer.upstream_task_ids == {"finance.lister", "finance.reviewer__items"}
    # every chunk starts in the triggerer and reads its own chunk from the items step by map index
    assert reviewer.start_from_trigger is True
    kwargs = reviewer.start_trigger_args.trigger_kwargs
    assert kwargs["chunk_source"] == "finance.reviewer__items" and kwargs["end_in_triggerer"] is True
    assert load_contract(AgentInvocation, kwargs["invocation"], "test").agent.name == "reviewer"
    assert items.fan_out.arguments == {"type": "AR"}
    assert dag.get_task("finance.writer").upstream_task_ids == {"finance.reviewer"}
    assert type(dag.get_task("finance.writer")).__name__ == "LLMAgentOperator"
    assert dag.get_task("workflow_summary").upstream_task_ids >= {"finance.reviewer", "finance.writer"}


def test_the_scheduler_sees_chunks_that_start_in_the_triggerer():
    """What the scheduler reads (``TaskInstance.start_trigger_args``): the serialized mapped operator's
    ``start_from_trigger`` and ``start_trigger_args``. An Airflow that stopped serializing them would
    start chunks on workers again; this fails first."""
    from airflow.serialization.serialized_objects import DagSerialization

    dag = render_dag(plan_workflow(_wf(for_each=ForEach(agent="lister"))))
    reviewer = DagSerialization.from_dict(DagSerialization.to_dict(dag)).get_task("finance.reviewer")
    assert type(reviewer).__name__ == "SerializedMappedOperator" and reviewer.start_from_trigger is True
    args = reviewer.start_trigger_args
    assert args.trigger_cls == "erp_agents.triggers.agent.AgentTrigger" and args.next_method == "execute_complete"
    assert args.timeout is not None


def test_chunks_cover_every_item_once_in_order():
    items = list(range(120))
    chunks = chunks_of(items, 50)
    assert [(c["start"], len(c["items"])) for c in chunks] == [(0, 50), (50, 50), (100, 20)]
    assert [i for c in chunks for i in c["items"]] == items
    assert chunks_of([], 50) == [{"schema_version": 1, "start": 0, "items": []}]


@pytest.mark.parametrize(("value", "text"), [
    ({"invoices": []}, "tool 'x' yielded dict, expected a list"),
    ("no list here", "tool 'x' yielded text that is not a JSON list"),
    (None, "tool 'x' yielded NoneType, expected a list"),
    (list(range(11)), "tool 'x' yielded 11 items, more than max_items 10"),
])
def test_a_source_that_is_not_a_small_enough_list_is_refused(value, text):
    with pytest.raises(PermanentAgentError) as err:
        checked_items(value, agent="reviewer", source="tool 'x'", max_items=10)
    assert str(err.value) == f"for_each of agent 'reviewer': {text}"


def test_an_upstream_answer_in_json_text_is_a_list():
    assert checked_items('[{"id": 1}, 2]', agent="a", source="agent 'b'", max_items=2) == [{"id": 1}, 2]


def test_the_items_step_keeps_each_chunk_alone_and_the_sizes():
    """The triggerer reads one chunk, or the sizes, never the whole list (see ``apull_chunk``)."""
    from erp_agents.xcom import CHUNK_SIZES_XCOM_KEY, chunk_key

    dag = render_dag(plan_workflow(_wf(for_each=ForEach(tool="finance.list_open_invoices"), chunk_size=10)))
    step = dag.get_task("finance.reviewer__items")

    class TI:
        pushed: dict = {}

        def xcom_push(self, *, key, value):
            self.pushed[key] = value

    ti = TI()
    chunks = step.execute({"ti": ti})
    assert [len(c["items"]) for c in chunks] == ti.pushed[CHUNK_SIZES_XCOM_KEY] == [10, 10, 6]
    assert [ti.pushed[chunk_key(i)] for i in range(3)] == chunks


def _run_items_trigger(monkeypatch, fan_out: ForEach, dag=None):
    """The items step's own trigger, its XCom writes kept instead of sent."""
    import asyncio
    from types import SimpleNamespace

    from erp_agents.triggers.items import ItemsTrigger, WritingRunReader

    pushed: dict = {}
    monkeypatch.setattr(WritingRunReader, "xcom_push",
                        lambda self, *, key, value, mapped_length=None: pushed.update({key: (value, mapped_length)}))
    dag = dag or render_dag(plan_workflow(_wf(for_each=fan_out, chunk_size=10, max_items=30)))
    step = dag.get_task("finance.reviewer__items")
    assert step.start_from_trigger is True
    trigger = ItemsTrigger(**step.start_trigger_args.trigger_kwargs)
    trigger.task_instance = SimpleNamespace(dag_id="wf", run_id="r", task_id="finance.reviewer__items", task=None)

    async def collect():
        return [e async for e in trigger.run()]

    return asyncio.run(collect()), pushed


def test_in_the_triggerer_the_items_step_writes_its_chunks_with_the_task_map_length(monkeypatch):
    from airflow.triggers.base import TaskSuccessEvent

    from erp_agents.xcom import CHUNK_SIZES_XCOM_KEY, RETURN_VALUE_KEY

    [event], pushed = _run_items_trigger(monkeypatch, ForEach(tool="finance.list_open_invoices"))
    assert isinstance(event, TaskSuccessEvent) and not event.xcoms
    chunks, length = pushed[RETURN_VALUE_KEY]
    assert length == len(chunks) == 3 and pushed[CHUNK_SIZES_XCOM_KEY] == ([10, 10, 6], None)


def test_in_the_triggerer_a_refused_source_fails_the_step_with_its_reason(monkeypatch):
    from airflow.triggers.base import TaskFailedEvent

    from erp_agents.xcom import COST_XCOM_KEY, RETURN_VALUE_KEY

    [event], pushed = _run_items_trigger(monkeypatch, ForEach(tool="finance.no_such_tool"))
    assert isinstance(event, TaskFailedEvent) and RETURN_VALUE_KEY not in pushed
    record, _ = pushed[COST_XCOM_KEY]
    assert record["status"] == "failed" and "finance.no_such_tool" in record["error"]


def _notified_wf(for_each: ForEach) -> Workflow:
    wf = _wf(for_each=for_each, chunk_size=10, max_items=30)
    return wf.model_copy(update={"notifications": Notifications(
        on_agent_failure=[NotifierSpec(type="webhook", url="http://hooks.test/agent")])})


def test_a_failed_items_step_notifies_on_agent_failure_naming_the_agent(monkeypatch):
    """The chunk tasks of a refused source end upstream_failed, which fires no callback: the step notifies."""
    from types import SimpleNamespace

    from erp_agents import notifications

    dag = render_dag(plan_workflow(_notified_wf(ForEach(tool="finance.list_open_invoices"))))
    agent_callbacks = dag.get_task("finance.reviewer").partial_kwargs["on_failure_callback"]
    step_callbacks = dag.get_task("finance.reviewer__items").on_failure_callback
    assert len(step_callbacks) == len(agent_callbacks) == 1
    assert step_callbacks[0].notifier is agent_callbacks[0]  # the same notifier as the agent's tasks
    quiet = render_dag(plan_workflow(_wf(for_each=ForEach(tool="finance.list_open_invoices"))))
    assert not quiet.get_task("finance.reviewer__items").on_failure_callback  # no notifications, no callback

    sent = []
    monkeypatch.setattr(notifications.httpx, "post", lambda url, json, headers, timeout: sent.append(json)
                        or SimpleNamespace(raise_for_status=lambda: None))
    ti = SimpleNamespace(dag_id="wf", run_id="r1", task_id="finance.reviewer__items", map_index=-1, try_number=1)
    step_callbacks[0]({"dag_run": SimpleNamespace(dag_id="wf", run_id="r1"), "ti": ti,
                       "exception": RuntimeError("for_each of agent 'reviewer': tool 'finance.x': unknown")})
    [payload] = sent
    assert (payload["event"], payload["task_id"], payload["failed_agents"]) == (
        "agent_failure", "finance.reviewer__items", ["finance.reviewer"])
    assert "tool 'finance.x'" in payload["error"]


def test_with_failure_callbacks_a_refused_source_fails_on_the_worker_path(monkeypatch):
    """As an agent task's, the step's callbacks get the error: the trigger hands the failure back."""
    from airflow.sdk.exceptions import AirflowFailException
    from airflow.triggers.base import TaskFailedEvent, TriggerEvent

    dag = render_dag(plan_workflow(_notified_wf(ForEach(tool="finance.no_such_tool"))))
    step = dag.get_task("finance.reviewer__items")
    assert step.start_trigger_args.trigger_kwargs["end_failures_in_triggerer"] is False
    [event], _ = _run_items_trigger(monkeypatch, ForEach(tool="finance.no_such_tool"), dag)
    assert type(event) is TriggerEvent and not isinstance(event, TaskFailedEvent)

    class TI:
        def xcom_push(self, *, key, value):
            pass

    with pytest.raises(AirflowFailException, match="finance.no_such_tool"):
        step.execute_complete({"ti": TI()}, event.payload)
