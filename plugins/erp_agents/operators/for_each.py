"""The items step of a fan-out agent: resolve its list at run time and cut it into chunks.

It takes milliseconds (a tool call on local ERP data, or one XCom read) and runs in the triggerer
(``erp_agents.triggers.items``), or on a worker under ``dag.test()``. It returns the chunks; the
agent task is ``.expand()``-ed over that return value, one mapped task per chunk (Airflow's dynamic
task mapping). A source that is not a list, or longer than ``max_items``, fails
here with a clear message before any model call; the message is pushed as the agent's cost record
so the run summary names it.
"""

from __future__ import annotations

import json
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException
from airflow.triggers.base import StartTriggerArgs

from erp_agents.contracts import FanOut, ItemChunk, load_contract
from erp_agents.costs.record import CostRecord
from erp_agents.exceptions import PermanentAgentError
from erp_agents.xcom import CHUNK_SIZES_XCOM_KEY, COST_XCOM_KEY, chunk_key, pull_agent_outputs


def checked_items(value: Any, *, agent: str, source: str, max_items: int) -> list[Any]:
    """The source's value as a list of at most ``max_items`` items, or a PermanentAgentError saying why not.

    An upstream agent that answered in text may have written its list as JSON: that text is parsed.
    """
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise PermanentAgentError(
                f"for_each of agent {agent!r}: {source} yielded text that is not a JSON list") from None
    if not isinstance(value, list):
        raise PermanentAgentError(
            f"for_each of agent {agent!r}: {source} yielded {type(value).__name__}, expected a list")
    if len(value) > max_items:
        raise PermanentAgentError(
            f"for_each of agent {agent!r}: {source} yielded {len(value)} items, more than max_items {max_items}")
    return value


def chunks_of(items: list[Any], chunk_size: int) -> list[dict[str, Any]]:
    """Consecutive chunks of at most ``chunk_size`` items (JSON-able ``ItemChunk``s); an empty list is one
    empty chunk, so the agent still runs and hands ``[]`` downstream."""
    if not items:
        return [ItemChunk(start=0, items=[]).model_dump(mode="json")]
    return [
        ItemChunk(start=start, items=items[start:start + chunk_size]).model_dump(mode="json")
        for start in range(0, len(items), chunk_size)
    ]


ITEMS_TRIGGER = "erp_agents.triggers.items.ItemsTrigger"


class ForEachItemsOperator(BaseOperator):
    """Resolve a fan-out agent's items and return them in chunks.

    Under the scheduler it runs in the triggerer (``ItemsTrigger``), so a fan-out waits for no worker
    process before its first chunk starts; ``dag.test()`` calls ``execute()``. Both run ``resolve_items``.

    :param fan_out: the agent's ``FanOut`` (source, arguments, chunk_size, max_items).
    :param record: the agent's empty cost record: pushed with the error when the source is refused.
    :param upstream: the source agent's name -> task id, for ``for_each: {agent: ...}``.
    :param fan_out_upstream: upstream names that are fan-out agents themselves (their output is joined).
    """

    template_fields = ()
    ui_color = "#eef7e8"

    def __init__(
        self,
        *,
        fan_out: FanOut | dict[str, Any],
        record: dict[str, Any],
        upstream: dict[str, str] | None = None,
        fan_out_upstream: tuple[str, ...] = (),
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("retries", 0)
        super().__init__(**kwargs)
        self.fan_out = load_contract(FanOut, fan_out, f"fan-out of task {self.task_id!r}")
        self.record = record
        self.upstream = dict(upstream or {})
        self.fan_out_upstream = tuple(fan_out_upstream)
        self.start_from_trigger = True
        trigger_kwargs: dict[str, Any] = {"fan_out": self.fan_out.model_dump_json(), "record": record,
                                          "upstream": self.upstream, "fan_out_upstream": list(self.fan_out_upstream)}
        if self.on_failure_callback:  # as an agent task's: its failure callbacks get the error on the worker path
            trigger_kwargs["end_failures_in_triggerer"] = False
        self.start_trigger_args = StartTriggerArgs(
            trigger_cls=ITEMS_TRIGGER,
            trigger_kwargs=trigger_kwargs,
            next_method="execute_complete",
            next_kwargs=None,
            timeout=None,
        )

    def execute(self, context: Any) -> list[dict[str, Any]]:
        return resolve_items(self.fan_out, self.record, self.upstream, self.fan_out_upstream, context["ti"], self.log)

    def execute_complete(self, context: Any, event: Any = None) -> list[dict[str, Any]]:
        """The items trigger ends its task itself, except a failure of a step with failure callbacks:
        resolved again here, it fails on the worker, whose callbacks get the error in their context."""
        return self.execute(context)


def resolve_items(fan_out: FanOut, record_data: dict[str, Any], upstream: dict[str, str],
                  fan_out_upstream: tuple[str, ...], ti: Any, log: Any) -> list[dict[str, Any]]:
    """The chunks (the caller pushes them as the return value ``.expand()`` maps over); each chunk also
    alone and the sizes are pushed here. A refused source pushes the cost record with the error and
    raises ``AirflowFailException``."""
    record = CostRecord.model_validate(record_data)
    try:
        value, source = _source_value(fan_out, record.agent, upstream, fan_out_upstream, ti)
        items = checked_items(value, agent=record.agent, source=source, max_items=fan_out.max_items)
    except PermanentAgentError as exc:
        record.status, record.error, record.error_type = "failed", str(exc), type(exc).__name__
        ti.xcom_push(key=COST_XCOM_KEY, value=record.to_dict())
        raise AirflowFailException(str(exc)) from None
    chunks = chunks_of(items, fan_out.chunk_size)
    log.info("Agent %s: %d items in %d chunks of at most %d", record.agent, len(items), len(chunks), fan_out.chunk_size)
    # Each chunk also alone, for the chunk's trigger (``apull_chunk``), and the sizes, for downstream
    # agents in the triggerer; the return value is what ``.expand()`` maps over.
    for index, chunk in enumerate(chunks):
        ti.xcom_push(key=chunk_key(index), value=chunk)
    ti.xcom_push(key=CHUNK_SIZES_XCOM_KEY, value=[len(chunk["items"]) for chunk in chunks])
    return chunks


def _source_value(fan_out: FanOut, agent: str, upstream: dict[str, str], fan_out_upstream: tuple[str, ...],
                  ti: Any) -> tuple[Any, str]:
    if fan_out.agent is not None:
        outputs = pull_agent_outputs(ti, {fan_out.agent: upstream[fan_out.agent]}, fan_out_upstream)
        return outputs[fan_out.agent], f"agent {fan_out.agent!r}"
    from erp_agents.exceptions import UnknownToolError
    from erp_agents.tools.registry import default_registry

    registry = default_registry()
    try:
        function = registry.tools[registry.qualified_name(fan_out.tool or "")]
        return function(**fan_out.arguments), f"tool {fan_out.tool!r}"
    except (UnknownToolError, TypeError, ValueError) as exc:
        raise PermanentAgentError(f"for_each of agent {agent!r}: tool {fan_out.tool!r}: {exc}") from None
