"""The one codec for what agent tasks push and pull through XCom.

An XCom value comes back as the dict that was pushed or, when a ``TaskSuccessEvent`` pushed it from
the triggerer, as that dict's JSON text: ``decode`` is the only place that tells them apart. Each
key has one model in ``erp_agents.contracts``; readers get the model (or the plain value inside
it), never a dict read by string keys. Pulls name a ``map_index`` so mapped tasks read their own item.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from erp_agents.contracts import AgentOutput, RunContext, RunSummary, Transcript, load_contract
from erp_agents.costs.record import COST_XCOM_KEY, CostRecord
from erp_agents.exceptions import ContractVersionError, PermanentAgentError

RETURN_VALUE_KEY = "return_value"
TRANSCRIPT_XCOM_KEY = "transcript"
__all__ = [
    "COST_XCOM_KEY",
    "RETURN_VALUE_KEY",
    "agent_output",
    "apull_agent_outputs",
    "cost_record_from_xcom",
    "decode",
    "pull_agent_outputs",
    "run_summary_from_xcom",
    "success_xcoms",
]


class _PullsXCom(Protocol):
    def xcom_pull(self, *, task_ids: str, key: str, map_indexes: int) -> Any: ...


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


def success_xcoms(output: AgentOutput, record: CostRecord, transcript: Transcript | None = None) -> dict[str, Any]:
    """What a successful agent task pushes: its answer, its cost record and, if kept, its transcript."""
    values = {RETURN_VALUE_KEY: output.model_dump(mode="json"), COST_XCOM_KEY: record.to_dict()}
    if transcript is not None:
        values[TRANSCRIPT_XCOM_KEY] = transcript.model_dump(mode="json")
    return values


def pull_agent_outputs(ti: _PullsXCom, upstream: dict[str, str], map_index: int = -1) -> dict[str, Any]:
    """Upstream outputs by agent name, on a worker (``ti.xcom_pull``)."""
    return {
        name: agent_output(ti.xcom_pull(task_ids=task_id, key=RETURN_VALUE_KEY, map_indexes=map_index))
        for name, task_id in upstream.items()
    }


async def apull_agent_outputs(run: RunContext, upstream: dict[str, str], map_index: int = -1) -> dict[str, Any]:
    """Upstream outputs by agent name, in the triggerer (its supervisor serves GetXCom)."""
    from airflow.sdk.execution_time.xcom import XCom

    outputs = {}
    for name, task_id in upstream.items():
        value = await XCom.aget_one(
            key=RETURN_VALUE_KEY, dag_id=run.dag_id, task_id=task_id, run_id=run.run_id, map_index=map_index
        )
        outputs[name] = agent_output(value)
    return outputs


async def apush_cost_record(run: RunContext, record: CostRecord) -> None:
    """Push a cost record from the triggerer (a cancelled run still reports what it spent)."""
    from airflow.sdk.execution_time.xcom import XCom

    await XCom.aset(
        key=COST_XCOM_KEY, value=record.to_dict(), dag_id=run.dag_id, task_id=run.task_id,
        run_id=run.run_id, map_index=run.map_index,
    )
