"""The multi-module ERP example in Python: 13 agents over HR, Finance, Inventory and Compliance.

Agents call the ERP tools of include/erp and depend on agents of other modules ("HR.payroll_export").
The prompts are the project's ERP prompt files. As a DAG file Airflow shows ``erp_multi_module_py``;
run as a script it executes once through OrchestrationEngine and prints status and cost.
"""

from __future__ import annotations

import asyncio
import os

from erp_agents import Agent, OpenAIClient, RetryPolicy, Workflow, build_dag
from erp_agents.aio import OrchestrationEngine
from include.erp import PROMPTS


def erp_agent(name: str, module: str, tools: list[str], *, depends: tuple[str, ...] = (), **fields: object) -> Agent:
    """One agent whose prompt is include/erp/prompts/<name>.md."""
    return Agent(
        name=name,
        module=module,
        llm_config=fields.pop("llm_config", {"model": "gpt-4o-mini", "temperature": 0.1, "max_tokens": 800}),
        prompt_template=(PROMPTS / f"{name}.md").read_text(),
        tools=tools,
        dependencies=depends,
        **fields,
    )


AGENTS = [
    # HR
    erp_agent("headcount_snapshot", "HR", ["hr.get_headcount"], critical=False, priority=4),
    erp_agent("payroll_export", "HR", ["hr.get_payroll_summary"], priority=9, cost_limit=0.2),
    erp_agent("leave_liability", "HR", ["hr.get_leave_balances"], critical=False, priority=3),
    # Finance
    erp_agent("bank_loader", "Finance", ["finance.reconcile_bank"], priority=9),
    erp_agent(
        "ledger_reconciler", "Finance", ["finance.reconcile_bank", "finance.get_ledger_balance"],
        depends=("bank_loader", "HR.payroll_export"), priority=8,
        llm_config={"model": "gpt-4o", "temperature": 0.1, "max_tokens": 1000},
    ),
    erp_agent("ap_aging", "Finance", ["finance.get_open_invoices"], priority=6),
    erp_agent("budget_variance", "Finance", ["finance.get_budget_vs_actual"], depends=("ledger_reconciler",)),
    # Inventory
    erp_agent("stock_check", "Inventory", ["inventory.get_stock_levels"], priority=7),
    erp_agent(
        "reorder_planner", "Inventory", ["inventory.get_reorder_candidates", "inventory.get_supplier_lead_times"],
        depends=("stock_check",),
    ),
    # Compliance
    erp_agent(
        "policy_review", "Compliance", ["compliance.get_overdue_policy_reviews", "compliance.lookup_policy"],
        critical=False,
    ),
    erp_agent("audit_followup", "Compliance", ["compliance.get_audit_findings"], critical=False),
    erp_agent(
        "sox_controls_check", "Compliance", ["compliance.lookup_policy", "compliance.get_audit_findings"],
        depends=("Finance.ledger_reconciler", "HR.payroll_export"), priority=7,
    ),
    erp_agent(
        "compliance_report", "Compliance", ["compliance.get_audit_findings"],
        depends=("audit_followup", "sox_controls_check", "policy_review"),
    ),
]

WORKFLOW = Workflow(
    name="erp_multi_module_py",
    description="Month-end close across HR, Finance, Inventory and Compliance",
    module="Finance",
    agents=AGENTS,
    max_parallel_agents=8,
    cost_budget=2.5,
    timeout=5400,
    allow_partial_completion=True,
    params={"period": "2026-10"},
    retry_policy=RetryPolicy(max_retries=2, base_delay=10, max_delay=120),
    tags=["examples"],
)

dag = build_dag(WORKFLOW)


async def main() -> None:
    client = OpenAIClient(api_key=os.environ.get("OPENAI_API_KEY"), base_url=os.environ.get("OPENAI_BASE_URL"))
    engine = OrchestrationEngine(llm_client=client)
    result = await engine.execute_workflow(await engine.register_workflow(WORKFLOW))
    print(f"Status: {result.status.value} ({result.reason})")
    print(f"Cost: ${result.total_cost:.4f} for {result.total_tokens} tokens")


if __name__ == "__main__":
    asyncio.run(main())
