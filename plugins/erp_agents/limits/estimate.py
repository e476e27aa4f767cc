"""Prompt token estimates for reservations, with a real tokenizer.

tiktoken downloads its encodings at first use, which fails on a host without internet. The
o200k_base encoding (GPT-4o, GPT-4.1, o-series, GPT-5) ships here, gzipped, and is checked against
tiktoken's own published SHA-256 before use, so it is byte for byte OpenAI's file. Other models'
tokenizers are not public (Anthropic) or differ a little (cl100k_base for GPT-4/3.5): their
estimate is the o200k count times ``FOREIGN_MARGIN``, rounded up, so reservations err high.

The file is read once per process (~0.5 s of CPU): an async caller loads it in a thread first
(``tokenizer_loaded`` says whether that is still needed), so the event loop does not stall on it.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import math
import threading
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources
from typing import Any

import tiktoken

O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"  # tiktoken_ext.openai_public
O200K_PATTERN = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
])
MESSAGE_OVERHEAD = 4  # role and separators per chat message
FOREIGN_MARGIN = 1.2
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o", "gpt-oss")


_LOAD_LOCK = threading.Lock()


def tokenizer_loaded() -> bool:
    """True once ``o200k`` is in memory, so calling it costs nothing."""
    return _load_o200k.cache_info().currsize > 0


def o200k() -> tiktoken.Encoding:
    """The o200k_base encoding from the shipped file (verified), without any download; loaded once,
    even when several threads ask at the same time."""
    if tokenizer_loaded():
        return _load_o200k()
    with _LOAD_LOCK:
        return _load_o200k()


@lru_cache(maxsize=1)
def _load_o200k() -> tiktoken.Encoding:
    raw = gzip.decompress(resources.files("erp_agents.limits").joinpath("data/o200k_base.tiktoken.gz").read_bytes())
    if hashlib.sha256(raw).hexdigest() != O200K_SHA256:
        raise RuntimeError("the shipped o200k_base.tiktoken does not match tiktoken's published hash")
    ranks = {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in raw.splitlines() if line)}
    return tiktoken.Encoding(name="o200k_base", pat_str=O200K_PATTERN, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": 199999, "<|endofprompt|>": 200018})


def exact_for(model: str) -> bool:
    """True when o200k_base is the model's own tokenizer."""
    name = model.split(":", 1)[-1].split("/")[-1].lower()
    return name.startswith(_O200K_PREFIXES)


def _texts(value: Any) -> Iterable[str]:
    if value is None:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, (bytes, bytearray)):
        return
    elif isinstance(value, dict):
        for v in value.values():
            yield from _texts(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _texts(v)
    elif hasattr(value, "parts"):  # a pydantic-ai ModelMessage
        for part in value.parts:
            content = getattr(part, "content", None)
            args = getattr(part, "args", None)
            yield from _texts(content if content is not None else args)
    elif hasattr(value, "model_dump"):
        yield json.dumps(value.model_dump(mode="json"), ensure_ascii=False)
    else:
        yield str(value)


def estimate_prompt_tokens(text_or_messages: Any, model: str) -> int:
    """Tokens a prompt (text, chat dicts or pydantic-ai messages) is likely to count, erring high."""
    messages = text_or_messages if isinstance(text_or_messages, (list, tuple)) else [text_or_messages]
    encoding = o200k()
    count = sum(len(encoding.encode_ordinary(text)) for text in _texts(messages))
    count += MESSAGE_OVERHEAD * len(messages) + 3
    return count if exact_for(model) else math.ceil(count * FOREIGN_MARGIN)
