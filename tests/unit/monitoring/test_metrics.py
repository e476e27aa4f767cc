"""Metrics: the OpenTelemetry instruments as Prometheus text, names and labels as documented, no run ids."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from erp_agents.costs.ledger import Ledger
from erp_agents.costs.ledger_types import Account, CallKey, ChargeDetail
from erp_agents.monitoring.metrics import LedgerTotal, Metrics, ledger_totals_source
from erp_agents.store import engine_for
from prometheus_client.parser import text_string_to_metric_families

LABELS = {"workflow": "erp_nightly", "module": "Finance", "model": "gpt-4o-mini", "provider": "openai"}


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.prometheus_text().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


def test_requests_tokens_cost_waits_and_agent_durations() -> None:
    m = Metrics()
    m.record_request(
        **LABELS, input_tokens=100, output_tokens=20, cost_usd=0.002, latency_s=0.4, limiter_wait_s=0.2
    )
    m.record_request(
        **LABELS,
        input_tokens=0,
        output_tokens=0,
        latency_s=0.1,
        limiter_wait_s=3.0,
        outcome="rate_limited",
        retries=1,
    )
    m.record_agent(**LABELS, duration_s=12.0, state="success")
    m.record_budget_refusal(workflow="erp_nightly", module="Finance", account="run")
    s = _samples(m)
    assert s[_key("erp_agents_requests_total", **LABELS, outcome="ok")] == 1
    assert s[_key("erp_agents_requests_total", **LABELS, outcome="rate_limited")] == 1
    assert s[_key("erp_agents_tokens_total", **LABELS, direction="input")] == 100
    assert s[_key("erp_agents_tokens_total", **LABELS, direction="output")] == 20
    assert s[_key("erp_agents_cost_usd_total", **LABELS)] == pytest.approx(0.002)
    assert s[_key("erp_agents_rate_limited_total", **LABELS)] == 1
    assert s[_key("erp_agents_request_retries_total", **LABELS)] == 1
    assert s[_key("erp_agents_limiter_wait_seconds_sum", **LABELS)] == pytest.approx(3.2)
    assert s[_key("erp_agents_limiter_wait_seconds_bucket", **LABELS, le="0.25")] == 1
    assert s[_key("erp_agents_agent_duration_seconds_count", **LABELS, state="success")] == 1
    assert (
        s[_key("erp_agents_budget_refusals_total", workflow="erp_nightly", module="Finance", account="run")]
        == 1
    )


def test_no_label_carries_a_run_id_and_the_names_are_the_documented_ones() -> None:
    import erp_agents.monitoring.metrics as module

    m = Metrics()
    m.record_request(**LABELS, input_tokens=1, output_tokens=1, cost_usd=0.1)
    m.record_agent(**LABELS, duration_s=1.0, state="failed")
    m.record_budget_refusal(workflow="w", module="m", account="day")
    allowed = {"workflow", "module", "model", "provider", "outcome", "direction", "state", "account", "le"}
    text = m.prometheus_text().decode()
    for family in text_string_to_metric_families(text):
        assert module.__doc__ and family.name in module.__doc__.replace("_total ", " "), family.name
        for sample in family.samples:
            assert set(sample.labels) <= allowed, sample
    assert "run_id" not in text


def test_an_unknown_outcome_is_refused() -> None:
    with pytest.raises(ValueError, match="outcome"):
        Metrics().record_request(**LABELS, outcome="weird")


def test_ledger_totals_cover_every_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(url)

    async def charge(task: str, call: int, micros: int) -> None:
        r = await ledger.reserve(
            CallKey("erp", "run1", task, -1, 1, call), [Account("run:erp/run1", 10**7, "run")], micros
        )
        await ledger.settle(
            r,
            micros,
            ChargeDetail(
                model="gpt-4o-mini", provider="openai", module="Finance", input_tokens=10, output_tokens=2
            ),
        )

    async def fill() -> None:
        await charge("a", 1, 1500)
        await charge("b", 1, 2500)

    asyncio.run(fill())
    ledger.close()
    totals = ledger_totals_source(engine_for(url))()
    assert totals == [LedgerTotal("erp", "Finance", "gpt-4o-mini", "openai", 2, 20, 4, 0.004)]
    m = Metrics()
    m.observe_ledger(lambda: totals)
    s = _samples(m)
    assert (
        s[
            _key(
                "erp_agents_ledger_requests_total",
                workflow="erp",
                module="Finance",
                model="gpt-4o-mini",
                provider="openai",
            )
        ]
        == 2
    )
    assert s[
        _key(
            "erp_agents_ledger_cost_usd_total",
            workflow="erp",
            module="Finance",
            model="gpt-4o-mini",
            provider="openai",
        )
    ] == pytest.approx(0.004)
    assert re.search(
        r'erp_agents_ledger_tokens_total\{.*direction="output".*\} 4\.0', m.prometheus_text().decode()
    )


def test_disabled_metrics_serve_no_ledger_totals_and_read_no_ledger() -> None:
    reads = []

    def source() -> list[LedgerTotal]:
        reads.append(1)
        return [LedgerTotal("erp", "Finance", "gpt-4o-mini", "openai", 2, 20, 4, 0.004)]

    off = Metrics(prefix="quiet_ledger", enabled=False)
    off.observe_ledger(source)
    assert not [key for key in _samples(off) if key[0].startswith("quiet_ledger_ledger_")]
    assert reads == []
    on = Metrics(prefix="loud_ledger")
    on.observe_ledger(source)
    assert _samples(on)[_key("loud_ledger_ledger_requests_total", **{**LABELS, "workflow": "erp"})] == 2
    assert reads == [1]
