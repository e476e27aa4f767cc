"""One Airflow pool per provider, sized to its concurrent requests, through the REST API v2.

Pools cap agent tasks that run on workers; tasks that start in the triggerer are not seen by pools,
so the limiter's concurrency tier stays the hard cap for every call. ``sync_pools`` is idempotent:
it creates missing pools, corrects slots and description of existing ones, and leaves the rest.
"""

from __future__ import annotations

from typing import Any

import httpx

POOL_PREFIX = "llm_"
DESCRIPTION = "erp-agents: concurrent requests of provider {provider}"


def pool_for(provider_name: str, engine_config: Any = None) -> str:
    """The provider's pool: its configured ``pool``, else ``llm_<provider>``."""
    if engine_config is not None:
        provider = engine_config.providers.get(provider_name)
        if provider is not None and provider.pool:
            return str(provider.pool)
    return f"{POOL_PREFIX}{provider_name}"


def wanted_pools(engine_config: Any) -> dict[str, dict[str, Any]]:
    """Pool name -> body for every provider; no concurrency limit is an unlimited pool (-1 slots)."""
    pools = {}
    for name in sorted(engine_config.providers):
        slots = engine_config.provider_limits(name).concurrent_requests
        pools[pool_for(name, engine_config)] = {
            "slots": -1 if slots is None else int(slots),
            "description": DESCRIPTION.format(provider=name),
            "include_deferred": True,
        }
    return pools


def _bearer(client: httpx.Client, token_or_auth: Any) -> str | None:
    """A token as given, or exchanged for (username, password) at ``/auth/token``."""
    if token_or_auth is None:
        return None
    if isinstance(token_or_auth, str):
        return token_or_auth
    username, password = token_or_auth
    response = client.post("/auth/token", json={"username": username, "password": password})
    response.raise_for_status()
    return str(response.json()["access_token"])


def sync_pools(api_base_url: str, token_or_auth: Any, engine_config: Any, *,
               transport: httpx.BaseTransport | None = None) -> list[str]:
    """Create or update the providers' pools; returns "created NAME", "updated NAME" or "unchanged NAME"."""
    done: list[str] = []
    with httpx.Client(base_url=api_base_url.rstrip("/"), timeout=30.0, transport=transport) as client:
        token = _bearer(client, token_or_auth)
        if token:
            client.headers["Authorization"] = f"Bearer {token}"
        for name, body in wanted_pools(engine_config).items():
            current = client.get(f"/api/v2/pools/{name}")
            if current.status_code == 404:
                client.post("/api/v2/pools", json={"name": name, **body}).raise_for_status()
                done.append(f"created {name}")
                continue
            current.raise_for_status()
            have = current.json()
            if all(have.get(k) == v for k, v in body.items()):
                done.append(f"unchanged {name}")
                continue
            client.patch(f"/api/v2/pools/{name}", json={"name": name, **body}).raise_for_status()
            done.append(f"updated {name}")
    return done


def sync_pools_in_metadata_db(engine_config: Any) -> list[str]:
    """The same pools written straight into Airflow's metadata DB, for a process that runs before the
    api-server does (an init container after ``airflow db migrate``); returns "set NAME (N slots)"."""
    from airflow.models.pool import Pool

    done = []
    for name, body in wanted_pools(engine_config).items():
        Pool.create_or_update_pool(name, slots=body["slots"], description=body["description"],
                                   include_deferred=body["include_deferred"])
        done.append(f"set {name} ({body['slots']} slots)")
    return done
