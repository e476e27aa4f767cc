"""A short digest of what a DAG was built from (the workflow, the engine config), kept in its docs.

The Python API writes a spec into a deployment's bundle and must know when the deployment's DAG is
built from that spec, not an earlier one with the same tasks: the digest of each model's values
(every field, defaults included, so a YAML round trip gives the same digest) is written into the DAG's
``doc_md``, which the REST API returns. Also shown in the UI: which version of a spec a DAG runs.
"""

from __future__ import annotations

import hashlib
import json
import re

from pydantic import BaseModel

_LINE = "Built from workflow spec `{workflow}` with engine config `{engine}` (digests)."
_PATTERN = re.compile(r"Built from workflow spec `(?P<workflow>[0-9a-f]+)` with engine config `(?P<engine>[0-9a-f]+)`")


def digest(model: BaseModel) -> str:
    """12 hex characters of SHA-256 over the model's values as canonical JSON. An agent's
    ``prompt_file`` is left out: its text is the ``prompt_template`` (a spec file's loader inlines it,
    and a spec written back holds the text only), so both forms of one spec give one digest."""
    data = model.model_dump(mode="json")
    for agent in data.get("agents") or ():
        agent.pop("prompt_file", None)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def digest_line(workflow: BaseModel, engine: BaseModel) -> str:
    return _LINE.format(workflow=digest(workflow), engine=digest(engine))


def digests_in(doc_md: str | None) -> tuple[str, str] | None:
    """(workflow digest, engine digest) from a DAG's docs; None for a DAG built without them."""
    found = _PATTERN.search(doc_md or "")
    return (found["workflow"], found["engine"]) if found else None
