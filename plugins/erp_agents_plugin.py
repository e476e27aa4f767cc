"""Entry module Airflow imports from the plugins folder; the package itself is .airflowignore'd."""

from erp_agents.plugin import ErpAgentsPlugin

__all__ = ["ErpAgentsPlugin"]
