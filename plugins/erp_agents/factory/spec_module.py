"""What a generated per-spec module calls: one spec file -> one DAG, or that spec's SpecError."""

from __future__ import annotations

from airflow.sdk import DAG

from erp_agents.exceptions import SpecError, SpecProblem
from erp_agents.factory.render import build_dag
from erp_agents.spec.discovery import load_engine_config
from erp_agents.spec.loader import load_spec_file
from erp_agents.spec.models import EngineConfig, Workflow


def dag_from_spec(spec_path: str, engine_config: str | None = None) -> DAG:
    """Build the spec's DAG; raise SpecError (file, line, field) so Airflow shows it for this file."""
    engine = load_engine_config(engine_config) if engine_config else EngineConfig()
    workflow = load_spec_file(spec_path)
    if not isinstance(workflow, Workflow):
        raise SpecError([SpecProblem(spec_path, 1, 1, "kind", "a second EngineConfig; only one is allowed")])
    return build_dag(workflow, engine, source=spec_path)


def refuse_spec(spec_path: str, field: str, message: str) -> None:
    """A spec the bundle cannot turn into a module of its own: shown as that module's import error."""
    raise SpecError([SpecProblem(spec_path, 1, 1, field, message)])
