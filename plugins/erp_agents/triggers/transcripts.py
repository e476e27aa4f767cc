"""What MonitorConfig.log_prompts keeps of an agent's run: its prompt and answer, masked and capped.

Apart from the trigger, so a fan-out chunk's items (``triggers.fanout``) keep theirs the same way."""

from __future__ import annotations

import json
from typing import Any

from erp_agents.contracts import ItemTranscript, Transcript

TRANSCRIPT_CAP = 16_000  # characters of prompt and of answer kept in XCom


def transcript(prompt: str, output: Any) -> Transcript:
    """Prompt and answer for the task's XCom (MonitorConfig.log_prompts), masked and size-capped."""
    from erp_agents.triggers.errors import mask

    answer = output if isinstance(output, str) else json.dumps(output, ensure_ascii=False, sort_keys=True)
    prompt, answer = mask(prompt), mask(answer)
    truncated = len(prompt) > TRANSCRIPT_CAP or len(answer) > TRANSCRIPT_CAP
    return Transcript(prompt=prompt[:TRANSCRIPT_CAP], output=answer[:TRANSCRIPT_CAP], truncated=truncated)


def item_transcript(index: int, prompt: str, output: Any) -> ItemTranscript:
    """A fan-out item's transcript: as ``transcript``, with the item's index in the whole list."""
    return ItemTranscript(index=index, **transcript(prompt, output).model_dump(exclude={"schema_version"}))
