"""One chunk of a fan-out agent: its items run concurrently in the triggerer's loop.

Every item is a whole agent run of its own: its prompt (``{{ item }}``, ``{{ item_index }}``), its
cost record, its in-call retries and its own ledger call keys (the item index is folded into the
call number), all under the agent's limiter and budgets. An item that fails (its prompt does not
render, its calls give up) fails alone; the chunk reports one ``ItemResult`` per item, in order.
With ``MonitorConfig.log_prompts`` each item that succeeded also keeps its transcript, as a plain agent does.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from erp_agents.contracts import AgentInvocation, ItemChunk, ItemResult, ItemTranscript, RunContext
from erp_agents.costs.record import CostRecord
from erp_agents.governance import item_call_base
from erp_agents.triggers.errors import as_agent_error, is_expected, mask_value
from erp_agents.tools.registry import default_registry
from erp_agents.triggers.runner import announce, run_agent
from erp_agents.triggers.transcripts import item_transcript


def item_record(invocation: AgentInvocation) -> CostRecord:
    return CostRecord(
        workflow=invocation.workflow,
        agent=invocation.agent.name,
        module=invocation.agent.module,
        provider=invocation.provider_name,
        model=invocation.model,
    )


async def run_item(
    invocation: AgentInvocation,
    run: RunContext,
    upstream: dict[str, Any],
    index: int,
    item: Any,
    record: CostRecord,
    *,
    log: logging.Logger | Any,
    prompt_out: list[str] | None = None,
) -> ItemResult:
    """Run the agent for one item; any failure becomes this item's failed result."""
    try:
        output = await run_agent(
            invocation, run, upstream, record, log=log, prompt_out=prompt_out,
            extra_context={"item": item, "item_index": index}, call_base=item_call_base(index),
        )
    except Exception as exc:  # one item's failure never ends the chunk
        error = as_agent_error(exc)
        record.status, record.error, record.error_type = "failed", str(error), type(error).__name__
        log.error("Agent %s item %d failed (%s): %s", invocation.agent.name, index, type(error).__name__, error,
                  exc_info=not is_expected(exc))
        return ItemResult(index=index, status="failed", error_type=type(error).__name__, error=str(error),
                          cost_record=record)
    return ItemResult(index=index, status="success", output=mask_value(output), cost_record=record)


async def run_chunk(
    invocation: AgentInvocation,
    run: RunContext,
    upstream: dict[str, Any],
    chunk: ItemChunk,
    records: list[CostRecord],
    *,
    log: logging.Logger | Any,
    transcripts: list[ItemTranscript] | None = None,
) -> list[ItemResult]:
    """All items of ``chunk`` at once (the limiter's concurrency tier is the cap); results in item order.

    ``records`` receives each item's record as it starts, so a cancelled chunk still knows its spend;
    ``transcripts``, when given (log_prompts), receives the transcript of each item that succeeded, in order.
    """
    mine = [item_record(invocation) for _ in chunk.items]
    records.extend(mine)
    prompts: list[list[str]] = [[] for _ in chunk.items]
    announce(invocation, {tool.name for tool in default_registry().build(invocation.agent.tools)}, log,
             items=len(chunk.items))
    results = list(await asyncio.gather(*(
        run_item(invocation, run, upstream, chunk.start + offset, item, mine[offset], log=log,
                 prompt_out=prompts[offset] if transcripts is not None else None)
        for offset, item in enumerate(chunk.items)
    )))
    if transcripts is not None:
        # The output kept is the item's masked one; ``item_transcript`` masks the prompt too.
        transcripts.extend(item_transcript(result.index, prompt[0], result.output)
                           for result, prompt in zip(results, prompts) if result.status == "success" and prompt)
    return results
