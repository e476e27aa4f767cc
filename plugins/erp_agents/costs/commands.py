"""``python -m erp_agents costs`` (spend from the ledger, live) and ``estimate SPEC`` (a forecast).

``costs`` reads the ledger of the governance store (``erp_agents.store.governance_url()``): settled
spend by workflow, module, model and day, what in-flight requests hold, and what is left of the
run, day and module budgets. ``estimate`` loads a spec and the engine config the DAG loader would
use, and prints ``costs.estimate.format_estimate``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, or_, select

from erp_agents.costs.ledger import Ledger
from erp_agents.costs.ledger_tables import accounts as accounts_t
from erp_agents.costs.ledger_tables import calls as calls_t
from erp_agents.costs.ledger_types import AccountState, GovernanceStoreUnavailable, SpendReport
from erp_agents.costs.money import format_usd, micros_to_usd

_RELATIVE = re.compile(r"^(\d+)\s*([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``24h``, ``7d``, ``30m``, ``90s`` back from now, or an ISO date or time (UTC when it has no zone)."""
    now = now or datetime.now(UTC)
    if match := _RELATIVE.match(text.strip()):
        return now - timedelta(seconds=int(match[1]) * _UNIT_S[match[2]])
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--since {text!r}: give 24h, 7d, 30m or an ISO date/time") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _days(since: datetime, now: datetime) -> list[str]:
    day, last = since.astimezone(UTC).date(), now.astimezone(UTC).date()
    found = []
    while day <= last:
        found.append(day.isoformat())
        day += timedelta(days=1)
    return found


def budget_states(engine: Engine, *, since: datetime, dag_id: str | None = None,
                  now: datetime | None = None) -> list[AccountState]:
    """Run accounts of the runs with calls since ``since`` (of ``dag_id`` if given), and the day and module
    accounts of the UTC days since then."""
    c = calls_t.c
    runs = select(c.dag_id, c.run_id).where(c.created_at >= since.timestamp()).distinct()
    if dag_id is not None:
        runs = runs.where(c.dag_id == dag_id)
    days = _days(since, now or datetime.now(UTC))
    with engine.connect() as conn:
        run_keys = [f"run:{dag}/{run}" for dag, run in conn.execute(runs)]
        a = accounts_t.c
        wanted: list[Any] = [a.key.in_(run_keys)] if run_keys else []
        wanted += [a.key.in_([f"day:{d}" for d in days])]
        wanted += [(a.kind == "module") & a.key.like(f"module:%:{d}") for d in days]
        rows = conn.execute(select(accounts_t).where(or_(*wanted)).order_by(a.kind, a.key)).all()
    return [AccountState(r.key, r.kind, r.budget_micros, r.spent_micros, r.reserved_micros) for r in rows]


def costs_view(ledger: Ledger, *, since: datetime, dag_id: str | None = None) -> dict[str, Any]:
    """What ``costs`` prints, as JSON-able data; money in USD as decimal strings."""
    report: SpendReport = ledger.spend(dag_id=dag_id, since=since)
    states = ledger.read(lambda engine: budget_states(engine, since=since, dag_id=dag_id))

    def usd(values: dict[str, int]) -> dict[str, str]:
        return {k: str(micros_to_usd(v)) for k, v in sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))}

    return {
        "since": since.isoformat(),
        "workflow": dag_id,
        "total_usd": str(micros_to_usd(report.total_micros)),
        "in_flight_usd": str(micros_to_usd(report.in_flight_micros)),
        "calls": report.calls,
        "input_tokens": report.input_tokens,
        "output_tokens": report.output_tokens,
        "expired_reservations": report.expired_calls,
        "by_workflow": usd(report.by_workflow),
        "by_module": usd(report.by_module),
        "by_model": usd(report.by_model),
        "by_day": dict(sorted(usd(report.by_day).items())),
        "budgets": [
            {"account": s.key, "kind": s.kind, "budget_usd": str(micros_to_usd(s.budget_micros)),
             "spent_usd": str(micros_to_usd(s.spent_micros)), "reserved_usd": str(micros_to_usd(s.reserved_micros)),
             "left_usd": str(micros_to_usd(s.remaining_micros))}
            for s in states
        ],
    }


def format_costs(view: dict[str, Any]) -> str:
    scope = f" of {view['workflow']}" if view["workflow"] else ""
    lines = [
        f"Spend{scope} since {view['since']}: ${view['total_usd']} in {view['calls']} requests "
        f"({view['input_tokens']} tokens in, {view['output_tokens']} out); in flight: ${view['in_flight_usd']}",
    ]
    for title, key in (("workflow", "by_workflow"), ("module", "by_module"), ("model", "by_model"), ("day", "by_day")):
        if view[key]:
            lines += ["", f"{'by ' + title:<48} {'USD':>14}", "-" * 63]
            lines += [f"{name or '-':<48} {usd:>14}" for name, usd in view[key].items()]
    if view["budgets"]:
        lines += ["", f"{'budget account':<48} {'budget':>12} {'spent':>12} {'reserved':>12} {'left':>12}", "-" * 100]
        lines += [f"{b['account']:<48} {b['budget_usd']:>12} {b['spent_usd']:>12} {b['reserved_usd']:>12} "
                  f"{b['left_usd']:>12}" for b in view["budgets"]]
    return "\n".join(lines)


def _costs(args: argparse.Namespace) -> int:
    from erp_agents.store import governance_url

    since: datetime = args.since
    try:
        ledger = Ledger(args.ledger_url or governance_url())
        try:
            view = costs_view(ledger, since=since, dag_id=args.workflow)
        finally:
            ledger.close()
    except GovernanceStoreUnavailable as exc:
        print(exc, file=sys.stderr)
        return 1
    print(json.dumps(view, indent=2) if args.json else format_costs(view))
    return 0


def _engine_config_for(spec: Path, explicit: str | None) -> Any:
    """--engine-config, else what the DAG loader uses: $ERP_AGENTS_ENGINE_CONFIG or the first EngineConfig
    among the specs of the spec's folder (searched in full) and of each parent folder that holds specs."""
    from erp_agents.spec.discovery import engine_config_file, load_engine_config, spec_files
    from erp_agents.spec.models import EngineConfig

    if explicit:
        return load_engine_config(explicit)
    folder = spec.resolve().parent
    found = engine_config_file(spec_files(folder))
    while found is None and folder.parent != folder:
        folder = folder.parent
        here = sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        if not here:
            break
        found = engine_config_file(here)
    return load_engine_config(found) if found else EngineConfig()


def _estimate(args: argparse.Namespace) -> int:
    from erp_agents.costs.estimate import estimate_workflow, format_estimate
    from erp_agents.exceptions import SpecError, UnknownPriceError
    from erp_agents.spec.loader import load_spec_file
    from erp_agents.spec.models import Workflow
    from erp_agents.store import governance_url

    spec = Path(args.spec)
    try:
        workflow = load_spec_file(spec)
        engine = _engine_config_for(spec, args.engine_config)
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return 1
    if not isinstance(workflow, Workflow):
        print(f"{spec}: an EngineConfig has nothing to estimate; give a Workflow spec", file=sys.stderr)
        return 1
    ledger: Ledger | None = None
    if not args.no_ledger:
        try:
            ledger = Ledger(args.ledger_url or governance_url())
        except GovernanceStoreUnavailable as exc:
            print(f"no typical cost: {exc}", file=sys.stderr)
    try:
        est = estimate_workflow(workflow, engine, items=args.items, ledger=ledger, call_s=args.call_seconds)
    except (UnknownPriceError, ValueError, GovernanceStoreUnavailable) as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        if ledger is not None:
            ledger.close()
    print(json.dumps(est.as_dict(), indent=2) if args.json else format_estimate(est).rstrip("\n"))
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def register(subparsers: Any) -> None:
    """Add ``costs`` and ``estimate`` to the ``python -m erp_agents`` parser."""
    costs = subparsers.add_parser("costs", help="spend by workflow, module, model and day, with budgets left")
    costs.add_argument("--workflow", default=None, help="only this workflow (dag_id)")
    costs.add_argument("--since", type=parse_since, default="24h", help="24h, 7d, 30m or an ISO date/time (default: 24h)")
    costs.add_argument("--json", action="store_true")
    costs.add_argument("--ledger-url", default=None, help="default: the governance store")
    costs.set_defaults(func=_costs)
    estimate = subparsers.add_parser("estimate", help="worst-case cost, typical cost and least wall time of a run")
    estimate.add_argument("spec", help="a Workflow spec file")
    estimate.add_argument("--items", type=_positive, default=1, help="runs to forecast together (default: 1)")
    estimate.add_argument("--engine-config", default=None, help="default: the one the DAG loader uses")
    estimate.add_argument("--call-seconds", type=float, default=0.0,
                          help="assumed seconds per request, for the concurrency and dependency bounds (default: 0)")
    estimate.add_argument("--json", action="store_true")
    estimate.add_argument("--ledger-url", default=None, help="default: the governance store")
    estimate.add_argument("--no-ledger", action="store_true", help="skip the typical cost from past runs")
    estimate.set_defaults(func=_estimate)
