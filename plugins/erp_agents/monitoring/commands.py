"""``python -m erp_agents status [--json] [--workflow W]``: the system status as a table or the seed's JSON.

The command is a client of the deployment's REST API: ``--api-url`` (default ``[api] base_url``) with
``--token`` or ``--username``/``--password`` (or $ERP_AGENTS_API_TOKEN, $ERP_AGENTS_API_USERNAME,
$ERP_AGENTS_API_PASSWORD); with none, the simple auth manager's all-admins token is asked for.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from erp_agents.monitoring.airflow_api import AccessDenied, Credentials, NotFound
from erp_agents.monitoring.status import StatusWindowError


def format_status(status: dict[str, Any]) -> str:
    """The status as a few aligned lines and a spend-by-workflow table."""
    wf, ag = status["monitoring"]["workflows"], status["monitoring"]["agents"]
    rl, ct = status["rate_limiting"], status["cost_tracking"]
    engine = "up" if status["engine"]["running"] else "DOWN"
    lines = [
        (
            f"erp-agents status, last {status['window']['hours']:g} h "
            f"(engine {engine}, {status['engine']['total_workflows']} workflows)"
        ),
        (
            f"  runs      started {wf['started']}  completed {wf['completed']} (partial {wf['partial']})  "
            f"failed {wf['failed']}  running {wf['running']}  success {wf['success_rate']}%"
        ),
        (
            f"  agents    executed {ag['executed']}  failed {ag['failed']}  running {ag['running']}  "
            f"retries {ag['retries']}  avg {ag['avg_execution_time']} s"
        ),
        (
            f"  requests  {rl['total_requests']}  tokens {rl['total_tokens']}  429s {rl['rate_limited']}  "
            f"avg limiter wait {rl['avg_wait_time']} s"
        ),
        f"  cost      ${ct['total_cost']:.6f}",
        "",
        f"{'workflow':<40} {'requests':>9} {'tokens':>10} {'cost USD':>12}",
        "-" * 74,
    ]
    for name, row in ct["by_workflow"].items():
        lines.append(f"{name:<40} {row['requests']:>9} {row['tokens']:>10} {row['cost']:>12.6f}")
    for b in ct["budgets"]:
        lines.append(
            f"budget {b['account']}: ${b['spent']:.4f} of ${b['budget']:.2f}, ${b['remaining']:.4f} left"
        )
    for h in rl["headroom"]:
        lines.append(
            f"limiter {h['scope']} {h['tier']}: {h['used']}/{h['limit']} used, {h['remaining']} left"
        )
    return "\n".join(lines)


def _credentials(args: argparse.Namespace) -> Credentials:
    token = args.token or os.environ.get("ERP_AGENTS_API_TOKEN")
    username = args.username or os.environ.get("ERP_AGENTS_API_USERNAME")
    password = args.password or os.environ.get("ERP_AGENTS_API_PASSWORD")
    return Credentials(token=token, username=username, password=password, all_admins=not (token or username))


def _status(args: argparse.Namespace) -> int:
    from erp_agents.monitoring.client import StatusClient
    from erp_agents.monitoring.governance import deployment_reader

    if args.api_url:
        url = args.api_url
    else:
        from airflow.configuration import conf

        url = conf.get("api", "base_url", fallback="") or "http://localhost:8080"
    client = StatusClient(
        url, _credentials(args), governance_factory=deployment_reader, window_hours=args.window_hours
    )
    started = time.perf_counter()
    try:
        status = client.get_system_status(args.window_hours, args.workflow)
    except (NotFound, StatusWindowError, AccessDenied) as exc:
        print(exc, file=sys.stderr)
        return 1
    print(json.dumps(status, indent=2) if args.json else format_status(status))
    if args.timing:
        print(f"status call {time.perf_counter() - started:.3f} s", file=sys.stderr)
    return 0


def register(subparsers: Any) -> None:
    """Add ``status`` to the ``python -m erp_agents`` parser."""
    status = subparsers.add_parser("status", help="runs, agents, requests, tokens and cost of the last hours")
    status.add_argument("--json", action="store_true", help="the seed's get_system_status JSON")
    status.add_argument("--workflow", default=None, help="only this workflow (dag_id)")
    status.add_argument(
        "--window-hours", type=float, default=None, help="default: MonitorConfig.status_window_hours"
    )
    status.add_argument("--api-url", default=None, help="the Airflow API server (default: [api] base_url)")
    status.add_argument("--token", default=None)
    status.add_argument("--username", default=None)
    status.add_argument("--password", default=None)
    status.add_argument("--timing", action="store_true", help="print the status call's time on stderr")
    status.set_defaults(func=_status)


def main(argv: list[str] | None = None) -> int:
    """``python -m erp_agents.monitoring.commands status ...`` (the same command, standalone)."""
    parser = argparse.ArgumentParser(prog="python -m erp_agents.monitoring.commands")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
