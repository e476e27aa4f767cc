"""Folder of specs -> DAGs, one broken file never hiding the others."""

from __future__ import annotations

import logging
from pathlib import Path

from airflow.sdk import DAG

from erp_agents.exceptions import SpecError
from erp_agents.factory.render import build_dag
from erp_agents.spec.discovery import load_folder


def load_dags(folder: str | Path, *, log: logging.Logger) -> list[DAG]:
    """Every valid workflow in ``folder`` as a DAG; each invalid spec is logged with file:line:field."""
    specs = load_folder(folder)
    dags = []
    for path, error in specs.errors.items():
        log.error("Invalid workflow spec %s:\n%s", path, error)
    for name, workflow in specs.workflows.items():
        try:
            dags.append(build_dag(workflow, specs.engine, source=specs.sources[name]))
        except SpecError as error:
            log.error("Invalid workflow spec %s:\n%s", name, error)
    return dags
