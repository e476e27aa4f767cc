"""The basic example in Python: three Finance agents in a chain, built with the original API.

As a DAG file, Airflow shows ``basic_workflow_py``. Run as a script it registers and executes the
workflow through OrchestrationEngine (``dag.test()``) and prints the status and cost:

    OPENAI_API_KEY=... python dags/examples/basic_workflow.py      # OPENAI_BASE_URL for a gateway
"""

from __future__ import annotations

import asyncio
import os

from erp_agents import Agent, EngineConfig, OpenAIClient, RetryPolicy, Workflow, build_dag
from erp_agents.aio import OrchestrationEngine

data_processor = Agent(
    name="data_processor",
    module="Finance",
    description="Process the month's ledger activity",
    llm_config={"model": "gpt-4o-mini", "temperature": 0.3, "max_tokens": 600},
    prompt_template=(
        "You are a financial data processor for Northwind Components Ltd. Summarise the general "
        "ledger for period {{ params.period }}. Use get_ledger_balance({\"account\": \"1000\"}) for operating cash."
    ),
    tools=["finance.get_ledger_balance"],
    priority=8,
)
data_analyzer = Agent(
    name="data_analyzer",
    module="Finance",
    description="Find trends and anomalies in the processed data",
    llm_config={"model": "gpt-4o-mini", "temperature": 0.5, "max_tokens": 600},
    prompt_template=(
        "List the anomalies a controller should look at, most material first.\n\n"
        "Ledger summary:\n{{ agents.data_processor.output }}"
    ),
    dependencies=["data_processor"],
    priority=6,
)
report_generator = Agent(
    name="report_generator",
    module="Finance",
    description="Write the period's report for the CFO",
    llm_config={"model": "gpt-4o-mini", "temperature": 0.5, "max_tokens": 800},
    prompt_template="Write a one-page CFO report for {{ params.period }}.\n\nAnalysis:\n{{ agents.data_analyzer.output }}",
    dependencies=["data_analyzer"],
    priority=5,
)

WORKFLOW = Workflow(
    name="basic_workflow_py",
    description="Process, analyse and report the month's financial data",
    module="Finance",
    agents=[data_processor, data_analyzer, report_generator],
    max_parallel_agents=3,
    cost_budget=1.0,
    timeout=1800,
    params={"period": "2026-10"},
    retry_policy=RetryPolicy(max_retries=2, base_delay=5),
    tags=["examples"],
)

dag = build_dag(WORKFLOW)


async def main() -> None:
    client = OpenAIClient(api_key=os.environ.get("OPENAI_API_KEY"), base_url=os.environ.get("OPENAI_BASE_URL"))
    engine = OrchestrationEngine(config=EngineConfig(), llm_client=client)
    workflow_id = await engine.register_workflow(WORKFLOW)
    result = await engine.execute_workflow(workflow_id)
    print(f"Status: {result.status.value}")
    print(f"Cost: ${result.total_cost:.4f}")
    for name, agent in result.agent_results.items():
        print(f"  {name:<20} {agent.state:<10} {agent.calls} calls  ${agent.cost:.6f}")


if __name__ == "__main__":
    asyncio.run(main())
