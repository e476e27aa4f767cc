"""Reading a finished run back: XComs from the metadata DB, requests from the simulator's log."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from genai_prices import Usage, calc_price

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


def expected_cost(requests: list[dict[str, Any]]) -> Decimal:
    """The run's price computed independently from the simulator's own usage counts."""
    total = Decimal(0)
    for r in requests:
        usage = Usage(
            input_tokens=r["usage"]["input_tokens"],
            output_tokens=r["usage"]["output_tokens"],
            cache_read_tokens=r["usage"].get("cache_read_tokens") or None,
            cache_write_tokens=r["usage"].get("cache_write_tokens") or None,
        )
        total += calc_price(usage, r["model"], provider_id="openai").total_price
    return total
