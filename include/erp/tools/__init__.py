"""The ERP tools LLM agents may call.

``ERP_TOOLS`` is the explicit allow-list: the plugin's tool registry imports it and exposes nothing
else to a model. Keys are ``<module>.<function>`` with the ERP module in lower case. Every tool is a
plain typed function whose docstring (first line, then a Google-style ``Args:`` section) provides
the tool description and the parameter descriptions of its JSON Schema.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import compliance, finance, hr, inventory

ERP_TOOLS: dict[str, Callable[..., Any]] = {
    "hr.get_headcount": hr.get_headcount,
    "hr.get_payroll_summary": hr.get_payroll_summary,
    "hr.get_leave_balances": hr.get_leave_balances,
    "finance.get_ledger_balance": finance.get_ledger_balance,
    "finance.reconcile_bank": finance.reconcile_bank,
    "finance.get_open_invoices": finance.get_open_invoices,
    "finance.list_open_invoices": finance.list_open_invoices,
    "finance.get_budget_vs_actual": finance.get_budget_vs_actual,
    "inventory.get_stock_levels": inventory.get_stock_levels,
    "inventory.get_reorder_candidates": inventory.get_reorder_candidates,
    "inventory.get_supplier_lead_times": inventory.get_supplier_lead_times,
    "compliance.lookup_policy": compliance.lookup_policy,
    "compliance.get_audit_findings": compliance.get_audit_findings,
    "compliance.get_overdue_policy_reviews": compliance.get_overdue_policy_reviews,
}

__all__ = ["ERP_TOOLS"]
