"""The AirflowPlugin that makes erp_agents visible to Airflow."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin


class ErpAgentsPlugin(AirflowPlugin):
    name = "erp_agents"
