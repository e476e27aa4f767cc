"""The cost record: accumulation, totals, and its XCom form (versioned, JSON round trip)."""

from __future__ import annotations

import json

import pytest

from erp_agents.costs.record import CostRecord, RequestCost, total_of
from erp_agents.exceptions import ContractVersionError
from erp_agents.xcom import cost_record_from_xcom


def _record() -> CostRecord:
    record = CostRecord(workflow="w", agent="a", module="HR", provider="openai", model="gpt-4o-mini")
    record.add(RequestCost(model="gpt-4o-mini", input_tokens=100, output_tokens=20, cache_read_tokens=0,
                           cost_usd=0.001, latency_s=0.5))
    record.add(RequestCost(model="gpt-4o-mini", input_tokens=50, output_tokens=10, cache_read_tokens=5,
                           cost_usd=0.0005, latency_s=0.25))
    return record


def test_cost_record_accumulates_and_round_trips_as_dict_and_as_json_text():
    record = _record()
    assert (record.calls, record.input_tokens, record.output_tokens, record.total_tokens) == (2, 150, 30, 180)
    assert record.cost_usd == pytest.approx(0.0015) and record.latency_s == 0.75
    data = record.to_dict()
    assert data["total_tokens"] == 180 and data["schema_version"] == 1
    assert cost_record_from_xcom(data) == record
    assert cost_record_from_xcom(json.dumps(data)) == record
    totals = total_of([record, cost_record_from_xcom(data)])
    assert (totals.calls, totals.total_tokens, totals.cost_usd) == (4, 360, pytest.approx(0.003))


def test_a_record_of_another_version_is_refused_naming_both_versions():
    data = {**_record().to_dict(), "schema_version": 7}
    with pytest.raises(ContractVersionError, match="schema_version 7, this erp_agents reads version 1"):
        cost_record_from_xcom(data)
    assert cost_record_from_xcom(None) is None
