"""The plugin's HTTP side: the FastAPI app Airflow mounts at /erp-agents and the dashboard page."""
