"""Independent re-computation of the simulator's documented answers and usage.

Deliberately does not import the simulator, so tests check the server
against the documented rules rather than against its own code.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

OVERHEAD = 3
SECRET_KEY = "sk-sim-SECRET-4242"


def tokens(text: str) -> int:
    return len(re.findall(r"\w+|[^\w\s]", text))


def digest(system: str, messages: list[dict[str, Any]]) -> str:
    """``messages`` in normalised form: role, text, tool_calls, tool_results."""
    normalised = [
        {"role": m["role"], "text": m.get("text", ""), "tool_calls": m.get("tool_calls", []),
         "tool_results": m.get("tool_results", [])}
        for m in messages
    ]
    payload = json.dumps({"system": system, "messages": normalised}, sort_keys=True, separators=(",", ":"),
                         ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def text_answer(model: str, system: str, messages: list[dict[str, Any]], user_text: str,
                results: list[tuple[str, str]] = ()) -> str:
    words = user_text.split()
    summary = "Reviewed: " + " ".join(words[:25]) + (" ..." if len(words) > 25 else "")
    if results:
        summary += " Tool results: " + "; ".join(f"{name}={preview}" for name, preview in results)
    return f"[{model}#{digest(system, messages)}] {summary}"
