"""Turns every workflow spec under dags/specs/ into an Airflow DAG.

Parsing reads local YAML only: no network, no database, no LLM. A broken spec is reported with
file, line and field and never hides the DAGs of the other specs.
"""

from __future__ import annotations

import logging
from pathlib import Path

from erp_agents.factory.loader import load_dags

log = logging.getLogger(__name__)
SPECS = Path(__file__).with_name("specs")

for _dag in load_dags(SPECS, log=log):
    globals()[_dag.dag_id] = _dag
