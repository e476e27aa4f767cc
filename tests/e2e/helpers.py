"""Reading a finished run back: XComs from the metadata DB, requests from the simulator's log."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from genai_prices import Usage, calc_price

from tests.conftest import EXTRA_DAGS

# The engine config the end-to-end specs run under: one provider per wire format.
ENGINE = """
kind: EngineConfig
version: 1
default_provider: openai
providers:
  openai: {type: openai, conn_id: openai_default}
  anthropic: {type: anthropic, conn_id: anthropic_default}
  gateway: {type: openai_compatible, conn_id: gateway_default}
  responses: {type: openai, conn_id: openai_default, openai_api: responses}
  common_ai: {type: pydanticai, conn_id: pydanticai_sim}
cost_config:
  model_costs: {llama-3.1-70b: {input: 0.0009, output: 0.0009}}
"""

# A small month-end close over the ERP tools: a tool round per tool agent, a cross-module
# dependency and structured output. Formatted with name, model and provider.
CLOSE_WORKFLOW = """
kind: Workflow
version: 1
name: {name}
module: Finance
params: {{period: "2026-10"}}
agents:
  - name: payroll_export
    module: HR
    llm_config: {{model: "{model}", provider: {provider}, max_tokens: 700}}
    system_prompt: You are the payroll accountant. Quote amounts exactly.
    prompt_template: |
      Use get_payroll_summary({{"period": "{{{{ params.period }}}}"}}) for the payroll register.
    tools: [hr.get_payroll_summary]
  - name: cash_check
    module: Finance
    llm_config: {{model: "{model}", provider: {provider}, max_tokens: 500}}
    prompt_template: |
      Payroll: {{{{ agents.payroll_export.output }}}}
      Use get_ledger_balance({{"account": "1000"}}) and state closing cash.
    dependencies: [HR.payroll_export]
    tools: [finance.get_ledger_balance]
  - name: close_verdict
    module: Finance
    llm_config: {{model: "{model}", provider: {provider}, max_tokens: 300}}
    prompt_template: "Give the close verdict for: {{{{ agents.cash_check.output }}}}"
    dependencies: [cash_check]
    output_schema:
      type: object
      properties:
        verdict: {{type: string, enum: [reconciled, adjustments_needed]}}
        closing_cash: {{type: number}}
      required: [verdict, closing_cash]
"""


def xcoms(dag_id: str, run_id: str, key: str) -> dict[str, Any]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(XComModel.task_id, XComModel.value).where(
                XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key == key
            )
        ).all()
    return dict(rows)


def first_user_text(request: dict[str, Any]) -> str:
    for message in request["request"]["messages"]:
        if message["role"] == "user":
            content = message["content"]
            return content if isinstance(content, str) else " ".join(p.get("text", "") for p in content)
    return ""


def final_text(request: dict[str, Any]) -> str | None:
    return request["response"]["choices"][0]["message"]["content"]


def expected_cost(requests: list[dict[str, Any]], provider: str = "openai", *, cache: bool = True) -> Decimal:
    """The run's price computed independently from the simulator's own usage counts (``cache=False``:
    as if nothing had been cached)."""
    total = Decimal(0)
    for r in requests:
        usage = Usage(
            input_tokens=r["usage"]["input_tokens"],
            output_tokens=r["usage"]["output_tokens"],
            cache_read_tokens=(r["usage"].get("cache_read_tokens") or None) if cache else None,
            cache_write_tokens=(r["usage"].get("cache_write_tokens") or None) if cache else None,
        )
        total += calc_price(usage, r["model"], provider_id=provider).total_price
    return total


@contextmanager
def spec_in_test_bundle(name: str, spec: str) -> Iterator[Any]:
    """Write the engine config and one workflow spec into the test DAG bundle and yield its DAG
    (dag.test() runs only DAGs of a configured bundle); the spec is removed afterwards."""
    from airflow.dag_processing.dagbag import DagBag

    (EXTRA_DAGS / "specs" / "engine.yaml").write_text(ENGINE)
    path = EXTRA_DAGS / "specs" / f"{name}.yaml"
    path.write_text(spec)
    try:
        yield DagBag(dag_folder=str(EXTRA_DAGS)).dags[name]
    finally:
        path.unlink(missing_ok=True)
