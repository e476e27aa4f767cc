"""What one agent run does around its provider calls, free of Airflow processes: failure classes and retries."""
