"""``python -m erp_agents``: spec tools, the run report, and the commands each area adds.

Each area (the embedded deployment, pools, costs, status) owns a ``commands`` module with a
``register(subparsers)`` function; this module only lists them, so a command lives next to what it does.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from importlib import import_module
from pathlib import Path

from erp_agents.exceptions import ErpAgentsError, SpecError
from erp_agents.lint import Loaded, limits_table, lint_paths, lint_warnings
from erp_agents.spec.schema import spec_json_schema


COMMAND_MODULES = (
    "erp_agents.stack.commands",
    "erp_agents.stack.cluster",
    "erp_agents.costs.commands",
    "erp_agents.limits.commands",
    "erp_agents.monitoring.commands",
)


def _lint(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in args.paths] or [Path("dags/specs")]
    loaded: Loaded = {}  # each folder is read once for all three checks
    problems = lint_paths(paths, loaded)
    for problem in problems:
        print(problem)
    for warning in lint_warnings(paths, loaded):
        print(warning)
    if args.limits:
        print(limits_table(paths, loaded))
    if problems:
        print(f"{len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0


def _schema(args: argparse.Namespace) -> int:
    print(json.dumps(spec_json_schema(args.kind), indent=2))
    return 0


def _report(args: argparse.Namespace) -> int:
    from erp_agents.monitoring.report import format_report, load_summary

    try:
        summary = load_summary(args.dag_id, args.run_id)
    except LookupError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2) if args.json else format_report(summary))
    return 0 if summary["status"] in ("completed", "partial") else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m erp_agents", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    lint = sub.add_parser("lint", help="validate spec files: file:line:column: field: message")
    lint.add_argument("paths", nargs="*", help="spec files or folders (default: dags/specs)")
    lint.add_argument("--limits", action="store_true", help="also print every agent's effective rate limits")
    lint.set_defaults(func=_lint)
    schema = sub.add_parser("schema", help="print the JSON Schema of the spec format")
    schema.add_argument("--kind", choices=["Workflow", "EngineConfig"], default="Workflow")
    schema.set_defaults(func=_schema)
    report = sub.add_parser("report", help="status, tokens and cost of a workflow run, per agent")
    report.add_argument("dag_id")
    report.add_argument("--run-id", default=None, help="default: the latest run")
    report.add_argument("--json", action="store_true")
    report.set_defaults(func=_report)
    for module in COMMAND_MODULES:
        import_module(module).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ErpAgentsError as exc:  # SpecError, StackError, AirflowApiError...: the message is the help
        print(exc, file=sys.stderr)
        return 1
