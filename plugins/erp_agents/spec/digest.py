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
    """12 hex characters of SHA-256 over the model's values as canonical JSON. (Dumps leave an agent's
    ``prompt_file`` out: its text is the ``prompt_template``, so a spec file and the spec written back
    from it give one digest.)"""
    text = json.dumps(model.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def digests_of(workflow: BaseModel, engine: BaseModel) -> tuple[str, str]:
    """(workflow digest, engine digest): what a DAG built from them shows in its docs."""
    return digest(workflow), digest(engine)


def digest_line(workflow: BaseModel, engine: BaseModel) -> str:
    workflow_digest, engine_digest = digests_of(workflow, engine)
    return _LINE.format(workflow=workflow_digest, engine=engine_digest)


def digests_in(doc_md: str | None) -> tuple[str, str] | None:
    """(workflow digest, engine digest) from a DAG's docs; None for a DAG built without them."""
    found = _PATTERN.search(doc_md or "")
    return (found["workflow"], found["engine"]) if found else None
