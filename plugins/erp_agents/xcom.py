"""The one codec for what agent tasks push and pull through XCom.

An XCom value comes back as the dict that was pushed or, when a ``TaskSuccessEvent`` pushed it from
the triggerer, as that dict's JSON text: ``decode`` is the only place that tells them apart. Each
key has one model in ``erp_agents.contracts``; readers get the model (or the plain value inside
it), never a dict read by string keys. Pulls name a ``map_index`` so mapped tasks read their own item.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from erp_agents.contracts import (
    AgentOutput,
    ItemResult,
    ItemTranscript,
    RunContext,
    RunOutputs,
    RunSummary,
    Transcript,
    load_contract,
)
from erp_agents.costs.record import COST_XCOM_KEY, CostRecord
from erp_agents.exceptions import ContractVersionError, PermanentAgentError
from erp_agents.spec.models import ITEMS_STEP_SUFFIX

RETURN_VALUE_KEY = "return_value"
TRANSCRIPT_XCOM_KEY = "transcript"
ITEMS_XCOM_KEY = "items"  # a fan-out chunk's per-item results
OUTPUTS_XCOM_KEY = "agent_outputs"  # workflow_summary's copy of every agent's output
CHUNK_SIZES_XCOM_KEY = "chunk_sizes"  # a fan-out items step's item count per chunk


def chunk_key(index: int) -> str:
    """The items step's XCom key holding chunk ``index`` alone (what that mapped task's trigger reads)."""
    return f"chunk_{index}"

__all__ = [
    "CHUNK_SIZES_XCOM_KEY",
    "COST_XCOM_KEY",
    "ITEMS_XCOM_KEY",
    "OUTPUTS_XCOM_KEY",
    "RETURN_VALUE_KEY",
    "agent_output",
    "apull_agent_outputs",
    "apull_chunk",
    "chunk_key",
    "cost_record_from_xcom",
    "decode",
    "fan_out_output",
    "item_results_from_xcom",
    "pull_agent_outputs",
    "run_outputs_from_xcom",
    "run_summary_from_xcom",
    "success_xcoms",
]


class _PullsXCom(Protocol):
    def xcom_pull(self, *, task_ids: str, key: str, map_indexes: int) -> Any: ...

    @property
    def dag_id(self) -> str: ...

    @property
    def run_id(self) -> str: ...


def decode(value: Any) -> Any:
    """The pushed value: JSON text is decoded exactly once, anything else is returned as it is."""
    if isinstance(value, (str, bytes)):
        return json.loads(value)
    return value


def agent_output(value: Any) -> Any:
    """The agent's answer inside its ``return_value`` XCom; None when the task pushed nothing."""
    if value is None:
        return None
    return load_contract(AgentOutput, decode(value), "return_value XCom").output


def fan_out_output(chunk_values: list[Any], chunk_sizes: list[int] | None = None) -> list[Any]:
    """A fan-out agent's output: its chunks' result lists (in map-index order) joined, in item order.

    A chunk that pushed nothing (every item failed) stands for ``chunk_sizes[i]`` nulls when the sizes
    are known, so later items keep their positions."""
    results: list[Any] = []
    for i, value in enumerate(chunk_values):
        chunk = agent_output(value)
        if chunk is None and chunk_sizes is not None:
            chunk = [None] * chunk_sizes[i]
        if not isinstance(chunk, list):
            raise PermanentAgentError(f"fan-out chunk output: expected a list, got {type(chunk).__name__}")
        results.extend(chunk)
    return results


def item_results_from_xcom(value: Any) -> list[ItemResult]:
    """A fan-out chunk's ``items`` XCom: one result per item."""
    if value is None:
        return []
    data = decode(value)
    if not isinstance(data, list):
        raise PermanentAgentError(f"items XCom: expected a list, got {type(data).__name__}")
    return [load_contract(ItemResult, entry, "items XCom entry") for entry in data]


def cost_record_from_xcom(value: Any) -> CostRecord | None:
    """The ``cost_record`` XCom as a CostRecord; None when the task pushed none."""
    if value is None:
        return None
    data = decode(value)
    found = data.get("schema_version") if isinstance(data, dict) else None
    if found != CostRecord.model_fields["schema_version"].default:
        raise ContractVersionError("cost_record XCom", found, CostRecord.model_fields["schema_version"].default)
    try:
        return CostRecord.model_validate(data)
    except ValueError as exc:
        raise PermanentAgentError(f"cost_record XCom is not valid: {exc}") from None


def run_summary_from_xcom(value: Any) -> RunSummary:
    """The ``workflow_summary`` task's ``return_value`` XCom."""
    return load_contract(RunSummary, decode(value), "workflow_summary XCom")


def run_outputs_from_xcom(value: Any) -> dict[str, Any]:
    """The ``workflow_summary`` task's ``agent_outputs`` XCom: outputs by task id."""
    return load_contract(RunOutputs, decode(value), "agent_outputs XCom").outputs


def success_xcoms(
    output: AgentOutput, record: CostRecord, transcript: Transcript | list[ItemTranscript] | None = None,
    items: list[ItemResult] | None = None,
) -> dict[str, Any]:
    """What a successful agent task pushes: its answer, its cost record and, if kept, its transcript
    (a fan-out chunk's: one per item that succeeded); a fan-out chunk adds its per-item results."""
    values: dict[str, Any] = {RETURN_VALUE_KEY: output.model_dump(mode="json"), COST_XCOM_KEY: record.to_dict()}
    if isinstance(transcript, list):
        values[TRANSCRIPT_XCOM_KEY] = [kept.model_dump(mode="json") for kept in transcript]
    elif transcript is not None:
        values[TRANSCRIPT_XCOM_KEY] = transcript.model_dump(mode="json")
    if items is not None:
        values[ITEMS_XCOM_KEY] = [item.model_dump(mode="json") for item in items]
    return values


def failure_xcoms(record: CostRecord, items: list[ItemResult] | None = None) -> dict[str, Any]:
    """What a failed agent task pushes when it ends in the triggerer: its cost record and, for a
    fan-out chunk, its per-item results (what ``execute_complete`` pushes on the worker path)."""
    values: dict[str, Any] = {COST_XCOM_KEY: record.to_dict()}
    if items is not None:
        values[ITEMS_XCOM_KEY] = [item.model_dump(mode="json") for item in items]
    return values


def pull_agent_outputs(
    ti: _PullsXCom, upstream: dict[str, str], fan_out: tuple[str, ...] = (), map_index: int = -1
) -> dict[str, Any]:
    """Upstream outputs by agent name, on a worker (``ti.xcom_pull``); a fan-out upstream's is the
    list of its item results."""
    outputs = {}
    for name, task_id in upstream.items():
        if name in fan_out:
            items_step = f"{task_id}{ITEMS_STEP_SUFFIX}"
            sizes = decode(ti.xcom_pull(task_ids=items_step, key=CHUNK_SIZES_XCOM_KEY, map_indexes=-1)) or []
            values = [ti.xcom_pull(task_ids=task_id, key=RETURN_VALUE_KEY, map_indexes=i) for i in range(len(sizes))]
            outputs[name] = fan_out_output(values, sizes)
        else:
            outputs[name] = agent_output(ti.xcom_pull(task_ids=task_id, key=RETURN_VALUE_KEY, map_indexes=map_index))
    return outputs


async def apull_agent_outputs(
    run: RunContext, upstream: dict[str, str], fan_out: tuple[str, ...] = (), map_index: int = -1
) -> dict[str, Any]:
    """Upstream outputs by agent name, in the triggerer (its supervisor serves GetXCom)."""
    from airflow.sdk.execution_time.xcom import XCom

    outputs = {}
    for name, task_id in upstream.items():
        if name in fan_out:
            outputs[name] = await _apull_fan_out(run, task_id)
            continue
        value = await XCom.aget_one(
            key=RETURN_VALUE_KEY, dag_id=run.dag_id, task_id=task_id, run_id=run.run_id, map_index=map_index
        )
        outputs[name] = agent_output(value)
    return outputs


async def _apull_fan_out(run: RunContext, task_id: str) -> list[Any]:
    """A fan-out agent's joined output, one map index at a time: the triggerer's supervisor in Airflow 3.3
    serves GetXCom but not the sequence reads a mapped XCom needs (GetXComSequenceSlice), so the chunk
    count comes from the items step's chunk sizes (never its whole chunk list: see ``apull_chunk``)."""
    from airflow.sdk.execution_time.xcom import XCom

    sizes = decode(await XCom.aget_one(key=CHUNK_SIZES_XCOM_KEY, dag_id=run.dag_id,
                                       task_id=f"{task_id}{ITEMS_STEP_SUFFIX}", run_id=run.run_id, map_index=-1)) or []
    values = [
        await XCom.aget_one(key=RETURN_VALUE_KEY, dag_id=run.dag_id, task_id=task_id, run_id=run.run_id, map_index=i)
        for i in range(len(sizes))
    ]
    return fan_out_output(values, sizes)


async def apull_chunk(run: RunContext, items_task_id: str) -> Any:
    """This mapped task's chunk (by its map index), in the triggerer.

    Read from the items step's XCom of that chunk alone, not its whole chunk list: Airflow 3.3's
    triggerer supervisor writes each answer to the trigger runner in one blocking send, while the
    runner may itself be blocked writing logs back to it. An answer larger than the socket's buffer
    (2,000 items' list, 40 chunks asking at once) deadlocked both processes.
    """
    from airflow.sdk.execution_time.xcom import XCom

    chunk = decode(await XCom.aget_one(key=chunk_key(run.map_index), dag_id=run.dag_id, task_id=items_task_id,
                                       run_id=run.run_id, map_index=-1))
    if chunk is None:
        raise PermanentAgentError(f"items XCom of {items_task_id}: no chunk {run.map_index}")
    return chunk


async def apush_cost_record(run: RunContext, record: CostRecord) -> None:
    """Push a cost record from the triggerer (a cancelled run still reports what it spent)."""
    from airflow.sdk.execution_time.xcom import XCom

    await XCom.aset(
        key=COST_XCOM_KEY, value=record.to_dict(), dag_id=run.dag_id, task_id=run.task_id,
        run_id=run.run_id, map_index=run.map_index,
    )
