"""The parallel-workflows example in Python: three small workflows of different modules.

In Airflow the three DAGs run side by side (same schedule; each has its own max_active_tasks).
Run as a script, the engine accepts all three at once with ``asyncio.gather`` and reports each.
"""

from __future__ import annotations

import asyncio
import os

from erp_agents import Agent, OpenAIClient, Workflow, build_dag
from erp_agents.aio import OrchestrationEngine

MODEL = {"model": "gpt-4o-mini", "max_tokens": 500}


def small_workflow(name: str, module: str, checks: dict[str, str], memo: str) -> Workflow:
    """Independent tool-using checks, then one agent that writes a memo from all of them."""
    agents = [
        Agent(name=check, module=module, llm_config=MODEL, prompt_template=f"Run the {check} check: call {tool.split('.')[1]}({{}}).", tools=[tool])
        for check, tool in checks.items()
    ]
    findings = "\n".join(f"{check}: {{{{ agents.{check}.output }}}}" for check in checks)
    agents.append(
        Agent(name="memo", module=module, llm_config=MODEL, prompt_template=f"{memo}\n\n{findings}", dependencies=list(checks))
    )
    return Workflow(
        name=name, module=module, agents=agents, max_parallel_agents=len(checks), cost_budget=0.5,
        schedule="30 1 * * 1", tags=["examples", "parallel_workflows"],
    )


WORKFLOWS = [
    small_workflow(
        "hr_review_py", "HR",
        {"headcount": "hr.get_headcount", "leave": "hr.get_leave_balances"},
        "Write a short memo to department heads on headcount and leave.",
    ),
    small_workflow(
        "inventory_review_py", "Inventory",
        {"stock": "inventory.get_stock_levels", "reorder": "inventory.get_reorder_candidates"},
        "Write a short purchasing memo: what to reorder first and why.",
    ),
    small_workflow(
        "compliance_review_py", "Compliance",
        {"findings": "compliance.get_audit_findings", "reviews": "compliance.get_overdue_policy_reviews"},
        "Write a short memo to the audit committee on open findings and overdue reviews.",
    ),
]

for _workflow in WORKFLOWS:
    globals()[_workflow.name] = build_dag(_workflow)


async def main() -> None:
    client = OpenAIClient(api_key=os.environ.get("OPENAI_API_KEY"), base_url=os.environ.get("OPENAI_BASE_URL"))
    engine = OrchestrationEngine(llm_client=client)
    ids = [await engine.register_workflow(w) for w in WORKFLOWS]
    results = await asyncio.gather(*(engine.execute_workflow(i) for i in ids))
    for result in results:
        print(f"{result.workflow_id:<24} {result.status.value:<10} ${result.total_cost:.4f}")
    print(f"Total cost: ${sum(r.total_cost for r in results):.4f}")


if __name__ == "__main__":
    asyncio.run(main())
