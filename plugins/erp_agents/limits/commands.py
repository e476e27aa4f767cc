"""``python -m erp_agents pools sync``: one Airflow pool per provider, sized to its concurrency."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def _sync(args: argparse.Namespace) -> int:
    from erp_agents.limits.pools import sync_pools
    from erp_agents.monitoring.config import engine_config

    if args.in_metadata_db:
        from erp_agents.limits.pools import sync_pools_in_metadata_db

        for line in sync_pools_in_metadata_db(engine_config()):
            print(line)
        return 0
    auth: Any = args.token or os.environ.get("ERP_AGENTS_API_TOKEN")
    if auth is None and args.username:
        auth = (args.username, args.password or os.environ.get("ERP_AGENTS_API_PASSWORD", ""))
    try:
        for line in sync_pools(args.api_url, auth, engine_config()):
            print(line)
    except Exception as exc:  # an HTTP or connection error: say which and fail
        print(f"pools sync against {args.api_url} failed: {exc}", file=sys.stderr)
        return 1
    return 0


def register(subparsers: Any) -> None:
    pools = subparsers.add_parser("pools", help="Airflow pools of the LLM providers")
    sub = pools.add_subparsers(dest="pools_command", required=True)
    sync = sub.add_parser("sync", help="create or update one pool per provider (slots = concurrent_requests)")
    sync.add_argument("--api-url", default=os.environ.get("ERP_AGENTS_API_URL", "http://127.0.0.1:8080"))
    sync.add_argument("--token", default=None, help="a bearer token (or env ERP_AGENTS_API_TOKEN)")
    sync.add_argument("--username", default=os.environ.get("ERP_AGENTS_API_USERNAME"))
    sync.add_argument("--password", default=None, help="or env ERP_AGENTS_API_PASSWORD")
    sync.add_argument("--in-metadata-db", action="store_true",
                      help="write the pools into Airflow's metadata DB directly (an init step before the api-server runs)")
    sync.set_defaults(func=_sync)
