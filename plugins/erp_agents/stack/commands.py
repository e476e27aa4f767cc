"""``python -m erp_agents up | down | ps``: start, stop and show the embedded deployment."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from erp_agents.stack.deployment import Deployment, Status
from erp_agents.stack.errors import StackError


def _deployment(args: argparse.Namespace) -> Deployment:
    return Deployment(
        home=Path(args.home) if args.home else Deployment().home,
        dags_folder=Path(args.dags_folder).resolve() if getattr(args, "dags_folder", None) else None,
        database_url=getattr(args, "database_url", None),
        api_port=getattr(args, "api_port", None),
        pg_port=getattr(args, "pg_port", None),
    )


def _up(args: argparse.Namespace) -> int:
    deployment = _deployment(args)
    started = time.monotonic()
    state, attached = deployment.up()
    user, password = deployment.login()
    verb = "already running" if attached else f"started in {time.monotonic() - started:.1f} s"
    print(f"Airflow {verb}: {state.api_url}  (login: {user} / {password})")
    print(f"  metadata DB:      {_hide(state.sql_alchemy_conn)}")
    print(f"  governance store: {_hide(state.governance_url)}")
    print(f"  logs:             {deployment.layout.logs}")
    print("  stop with:        python -m erp_agents down")
    return 0


def _down(args: argparse.Namespace) -> int:
    deployment = _deployment(args)
    stopped = deployment.down()
    print(f"stopped: {', '.join(stopped)}" if stopped else f"nothing is running under {deployment.home}")
    return 0


def _ps(args: argparse.Namespace) -> int:
    status = _deployment(args).status()
    print(format_status(status))
    return 0 if status.running else 1


def format_status(status: Status) -> str:
    rows = [f"{'component':<14} {'pid':>8} {'PSS MB':>10}"]
    pg = f"{status.postgres_pid:>8}" if status.postgres_pid else f"{'-':>8}"
    if status.state and status.state.pg_port is not None:
        rows.append(f"{'postgres':<14} {pg} {'':>10}  port {status.state.pg_port}")
    for name, info in status.components.items():
        note = "  stale pid file" if name in status.stale else ""
        rows.append(f"{name:<14} {info.pid:>8} {info.pss_bytes / 2**20:>10.0f}" if info else f"{name:<14} {'-':>8}{note}")
    if status.state and status.running:
        rows.append(f"UI: {status.state.api_url}")
    elif not status.anything_running:
        rows.append("nothing is running (python -m erp_agents up)")
    return "\n".join(rows)


def _hide(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``up``, ``down`` and ``ps`` to the ``python -m erp_agents`` parser."""
    for name, func, text in (
        ("up", _up, "start the embedded deployment (PostgreSQL + Airflow) or attach to a running one"),
        ("down", _down, "stop the embedded deployment"),
        ("ps", _ps, "show the embedded deployment's processes"),
    ):
        parser = subparsers.add_parser(name, help=text)
        parser.add_argument("--home", help="AIRFLOW_HOME of the deployment (default: $AIRFLOW_HOME or ~/airflow)")
        if name == "up":
            parser.add_argument("--api-port", type=int, help="api-server port (default 8080; 0 = any free port)")
            parser.add_argument("--pg-port", type=int, help="embedded PostgreSQL port (default: any free port)")
            parser.add_argument("--database-url", help="use this PostgreSQL instead of the embedded server")
            parser.add_argument("--dags-folder", help="default: the project's dags/")
        parser.set_defaults(func=func)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m erp_agents.stack", description=__doc__)
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
