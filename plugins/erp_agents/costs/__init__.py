"""Prices, cost records and (later) the budget ledger: plain values and pure functions, no Airflow."""
