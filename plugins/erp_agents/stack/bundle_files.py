"""Specs registered through OrchestrationEngine, as files of the deployment's engine DAG bundle.

Each workflow gets a folder (its spec and the engine config it was registered with) and a small
DAG file that loads that folder, so the deployment's own dag-processor, scheduler, triggerer and
workers all see the same DAG, and re-registering one workflow reparses only its own file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from erp_agents.spec.models import EngineConfig, Workflow
from erp_agents.stack.settings import Layout

STUB = '''"""Airflow DAG file for the workflow {dag_id!r} registered through OrchestrationEngine (spec: {dag_id}/)."""

import logging
from pathlib import Path

from erp_agents.factory.loader import load_dags

for _dag in load_dags(Path(__file__).with_name({dag_id!r}), log=logging.getLogger(__name__)):
    globals()[_dag.dag_id] = _dag
'''


def spec_yaml(spec: Workflow | EngineConfig) -> str:
    """The spec file text that loads back into an equal model (``kind``/``version`` first).

    Every field that was set is written, even at its default value: whether a field was set is part
    of its meaning (an agent's max_retries, the tiers of a RateLimitConfig)."""
    data: dict[str, Any] = spec.model_dump(mode="json", exclude_unset=True)
    kind = "Workflow" if isinstance(spec, Workflow) else "EngineConfig"
    return yaml.safe_dump({"kind": kind, "version": 1, **data}, sort_keys=False, allow_unicode=True)


def deploy_spec(layout: Layout, workflow: Workflow, engine: EngineConfig) -> Path:
    """Write the workflow's folder and DAG file into the engine bundle; returns the DAG file.
    Files are replaced atomically, so the dag-processor never reads half a spec."""
    folder = layout.engine_bundle / workflow.name
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder / "engine.yaml", spec_yaml(engine))
    _write(folder / "workflow.yaml", spec_yaml(workflow))
    stub = layout.engine_bundle / f"{workflow.name}.py"
    text = STUB.format(dag_id=workflow.name)
    if not stub.exists() or stub.read_text() != text:
        _write(stub, text)
    else:
        os.utime(stub)  # a changed spec: the file's new mtime marks it for parsing
    return stub


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
