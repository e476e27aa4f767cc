"""Metrics through an OpenTelemetry meter, readable as Prometheus text.

Airflow 3.3's ``Stats`` does not reach a backend from plugin code (apache/airflow#69172), so the
project keeps its own MeterProvider. Every process that records (the triggerer, where agents run)
exports the way OpenTelemetry is configured: OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the metrics
one) is set, and a Prometheus port of its own when ``ERP_AGENTS_METRICS_PORT`` is set. The API server's
``/erp-agents/metrics`` route serves its own meter plus the ledger's totals, which cover every process.

Names (Prometheus form) and labels; no label carries a run id, so cardinality is bounded by
workflows x modules x models:

=============================================  =========  =============================================
erp_agents_requests_total                      counter    workflow, module, model, provider, outcome
erp_agents_tokens_total                        counter    workflow, module, model, provider, direction
erp_agents_cost_usd_total                      counter    workflow, module, model, provider
erp_agents_rate_limited_total                  counter    workflow, module, model, provider (429s seen)
erp_agents_request_retries_total               counter    workflow, module, model, provider
erp_agents_budget_refusals_total               counter    workflow, module, account (agent/run/day/module)
erp_agents_limiter_wait_seconds                histogram  workflow, module, model, provider
erp_agents_request_latency_seconds             histogram  workflow, module, model, provider
erp_agents_agent_duration_seconds              histogram  workflow, module, model, provider, state
erp_agents_ledger_requests_total               counter    workflow, module, model, provider (ledger)
erp_agents_ledger_tokens_total                 counter    ... and direction (ledger)
erp_agents_ledger_cost_usd_total               counter    workflow, module, model, provider (ledger)
=============================================  =========  =============================================
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, generate_latest

from erp_agents.spec.models import MonitorConfig

OUTCOMES = ("ok", "rate_limited", "error")
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


@dataclass(frozen=True)
class LedgerTotal:
    """One ledger group: settled requests, tokens and cost of a (workflow, module, model, provider)."""

    workflow: str
    module: str
    model: str
    provider: str
    requests: int
    input_tokens: int
    output_tokens: int
    cost_usd: float


log = logging.getLogger(__name__)

LedgerSource = Callable[[], Sequence[LedgerTotal]]


def _labels(workflow: str, module: str, model: str, provider: str) -> dict[str, str]:
    return {
        "workflow": workflow,
        "module": module or "unknown",
        "model": model or "unknown",
        "provider": provider or "unknown",
    }


class Metrics:
    """The project's instruments on a MeterProvider of its own (never the global one Airflow may set)."""

    def __init__(self, prefix: str = "erp_agents", readers: Iterable[MetricReader] = (), enabled: bool = True) -> None:
        self.enabled = enabled  # MonitorConfig.enabled: false records nothing
        self.registry = CollectorRegistry(auto_describe=True)
        self._prometheus = PrometheusMetricReader(
            disable_target_info=True, scope_info_enabled=False, registry=self.registry
        )
        self.provider = MeterProvider(
            metric_readers=[self._prometheus, *readers],
            resource=Resource.create({"service.name": "erp_agents"}),
        )
        meter = self.provider.get_meter("erp_agents")
        p = prefix
        self.requests = meter.create_counter(f"{p}_requests", description="Model requests by outcome")
        self.tokens = meter.create_counter(f"{p}_tokens", description="Tokens by direction (input/output)")
        self.cost = meter.create_counter(f"{p}_cost_usd", description="Cost of settled requests, USD")
        self.rate_limited = meter.create_counter(f"{p}_rate_limited", description="429 answers seen")
        self.retries = meter.create_counter(
            f"{p}_request_retries", description="Requests retried after a transient error"
        )
        self.refusals = meter.create_counter(
            f"{p}_budget_refusals", description="Requests refused by a budget"
        )
        self.wait = meter.create_histogram(
            f"{p}_limiter_wait_seconds",
            description="Time spent waiting for the rate limiter",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.latency = meter.create_histogram(
            f"{p}_request_latency_seconds",
            description="Model request latency",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.duration = meter.create_histogram(
            f"{p}_agent_duration_seconds",
            description="Agent run time",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._ledger: LedgerSource | None = None
        self._ledger_lock = threading.Lock()
        self._ledger_cache: tuple[int, Sequence[LedgerTotal]] = (-1, ())
        self._scrape = 0
        meter.create_observable_counter(
            f"{p}_ledger_requests",
            [self._observe("requests")],
            description="Settled requests in the ledger (all processes)",
        )
        meter.create_observable_counter(
            f"{p}_ledger_tokens",
            [self._observe("tokens")],
            description="Settled tokens in the ledger by direction (all processes)",
        )
        meter.create_observable_counter(
            f"{p}_ledger_cost_usd",
            [self._observe("cost")],
            description="Settled cost in the ledger, USD (all processes)",
        )

    def observe_ledger(self, source: LedgerSource | None) -> None:
        """Serve the ledger's totals with every scrape (the API server does; recording processes need not)."""
        self._ledger = source

    def _ledger_totals(self) -> Sequence[LedgerTotal]:
        """One ledger read per scrape, shared by the three observable counters; none when disabled,
        so ``MonitorConfig.enabled: false`` serves no ledger totals and costs no ledger query."""
        with self._ledger_lock:
            if self._ledger is None or not self.enabled:
                return ()
            if self._ledger_cache[0] != self._scrape:
                self._ledger_cache = (self._scrape, self._ledger())
            return self._ledger_cache[1]

    def _observe(self, what: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            for t in self._ledger_totals():
                labels = _labels(t.workflow, t.module, t.model, t.provider)
                if what == "requests":
                    yield Observation(t.requests, labels)
                elif what == "cost":
                    yield Observation(t.cost_usd, labels)
                else:
                    yield Observation(t.input_tokens, {**labels, "direction": "input"})
                    yield Observation(t.output_tokens, {**labels, "direction": "output"})

        return callback

    def prometheus_text(self) -> bytes:
        """The Prometheus text exposition of every instrument."""
        with self._ledger_lock:
            self._scrape += 1
        return generate_latest(self.registry)

    def record_request(
        self,
        *,
        workflow: str,
        module: str,
        model: str,
        provider: str,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost_usd: float = 0.0,
        latency_s: float = 0.0,
        limiter_wait_s: float = 0.0,
        outcome: str = "ok",
        retries: int = 0,
    ) -> None:
        """One model request as GovernedModel saw it (outcome: ok, rate_limited or error)."""
        if not self.enabled:
            return
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
        labels = _labels(workflow, module, model, provider)
        self.requests.add(1, {**labels, "outcome": outcome})
        if input_tokens:
            self.tokens.add(input_tokens, {**labels, "direction": "input"})
        if output_tokens:
            self.tokens.add(output_tokens, {**labels, "direction": "output"})
        if cost_usd:
            self.cost.add(cost_usd, labels)
        if outcome == "rate_limited":
            self.rate_limited.add(1, labels)
        if retries:
            self.retries.add(retries, labels)
        self.wait.record(limiter_wait_s, labels)
        self.latency.record(latency_s, labels)

    def record_agent(
        self, *, workflow: str, module: str, model: str, provider: str, duration_s: float, state: str
    ) -> None:
        """One agent task attempt ended (state: success or failed)."""
        if not self.enabled:
            return
        self.duration.record(duration_s, {**_labels(workflow, module, model, provider), "state": state})

    def record_retry(self, *, workflow: str, module: str, model: str, provider: str) -> None:
        """A failed attempt that the in-call retry policy will try again."""
        if not self.enabled:
            return
        self.retries.add(1, _labels(workflow, module, model, provider))

    def record_budget_refusal(self, *, workflow: str, module: str, account: str) -> None:
        """A request the ledger refused; ``account`` is the account kind (agent, run, day, module)."""
        if not self.enabled:
            return
        self.refusals.add(1, {"workflow": workflow, "module": module or "unknown", "account": account})

    def shutdown(self) -> None:
        self.provider.shutdown()


def _readers_from_env() -> list[MetricReader]:
    """OTLP export when OpenTelemetry's standard environment asks for it."""
    if not (
        os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    ):
        return []
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    return [PeriodicExportingMetricReader(OTLPMetricExporter())]


def _monitor_config() -> MonitorConfig:
    """The deployment's MonitorConfig; a broken engine config spec is reported by the DAG loader, not here."""
    from erp_agents.exceptions import SpecError
    from erp_agents.monitoring.config import monitor_config

    try:
        return monitor_config()
    except SpecError as exc:
        log.error("engine config is invalid, metrics use MonitorConfig defaults: %s", exc)
        return MonitorConfig()


_metrics: Metrics | None = None
_metrics_lock = threading.Lock()


def metrics() -> Metrics:
    """This process's Metrics, made on first use; also on a port when ERP_AGENTS_METRICS_PORT is set."""
    global _metrics
    with _metrics_lock:
        if _metrics is None:
            config = _monitor_config()
            _metrics = Metrics(prefix=config.metrics_prefix, readers=_readers_from_env(), enabled=config.enabled)
            port = os.environ.get("ERP_AGENTS_METRICS_PORT")
            if port:
                from prometheus_client import start_http_server

                start_http_server(int(port), registry=_metrics.registry)
        return _metrics


def record_request(**kwargs: Any) -> None:
    """Module-level shortcut of ``Metrics.record_request`` on this process's metrics."""
    metrics().record_request(**kwargs)


def record_agent(**kwargs: Any) -> None:
    """Module-level shortcut of ``Metrics.record_agent`` on this process's metrics."""
    metrics().record_agent(**kwargs)


def record_retry(**kwargs: Any) -> None:
    """Module-level shortcut of ``Metrics.record_retry`` on this process's metrics."""
    metrics().record_retry(**kwargs)


def record_budget_refusal(**kwargs: Any) -> None:
    """Module-level shortcut of ``Metrics.record_budget_refusal`` on this process's metrics."""
    metrics().record_budget_refusal(**kwargs)


def ledger_totals_source(engine: Any) -> LedgerSource:
    """Ledger totals grouped by workflow, module, model and provider (settled requests only)."""
    from sqlalchemy import func, inspect, select

    from erp_agents.costs.ledger_tables import calls

    def read() -> Sequence[LedgerTotal]:
        c = calls.c
        with engine.connect() as conn:
            if not inspect(conn).has_table("erp_ledger_calls"):
                return ()
            rows = conn.execute(
                select(
                    c.dag_id,
                    c.module,
                    c.model,
                    c.provider,
                    func.count(),
                    func.sum(c.input_tokens),
                    func.sum(c.output_tokens),
                    func.sum(c.actual_micros),
                )
                .where(c.state == "settled")
                .group_by(c.dag_id, c.module, c.model, c.provider)
            ).all()
        return [
            LedgerTotal(
                r[0],
                r[1] or "",
                r[2] or "",
                r[3] or "",
                int(r[4]),
                int(r[5] or 0),
                int(r[6] or 0),
                int(r[7] or 0) / 1_000_000,
            )
            for r in rows
        ]

    return read
