"""Spec -> plan (plain data) -> render (the only stage that imports Airflow)."""
