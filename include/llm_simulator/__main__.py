"""Command line: ``python -m include.llm_simulator [flags]`` (run from the repo root).

Every flag can also come from an ``LLM_SIM_*`` environment variable named
after it (``--latency-jitter`` -> ``LLM_SIM_LATENCY_JITTER``); a flag given
on the command line wins over the environment.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from typing import Callable, Sequence

import uvicorn

from include.llm_simulator.app import create_app
from include.llm_simulator.settings import DEFAULT_CACHE_MIN_TOKENS, DEFAULT_FAULT_KINDS, SimulatorSettings

ENV_PREFIX = "LLM_SIM_"

# flag, type, default, help
_FLAGS: tuple[tuple[str, Callable[[str], object], str, str], ...] = (
    ("host", str, "127.0.0.1", "interface to bind"),
    ("port", int, "8765", "TCP port (0 = any free port)"),
    ("latency", float, "0.0", "seconds each model request waits"),
    ("latency-jitter", float, "0.0", "uniform +/- jitter added to the latency"),
    ("log", str, "", "JSONL request log path ('' = memory only)"),
    ("rpm", int, "0", "requests per window per API key (0 = unlimited)"),
    ("tpm", int, "0", "tokens per window per API key (0 = unlimited)"),
    ("window-seconds", float, "60", "length of the sliding rate-limit window"),
    ("max-concurrent", int, "0", "requests served at once per API key (0 = unlimited)"),
    ("fault-rate", float, "0.0", "probability of a random fault per request"),
    ("fault-kinds", str, ",".join(DEFAULT_FAULT_KINDS), "comma list of random fault kinds"),
    ("seed", int, "0", "seed for random faults and latency jitter"),
    ("api-key", str, "", "required API key ('' = any non-empty key)"),
    ("cache-min-tokens", int, str(DEFAULT_CACHE_MIN_TOKENS), "smallest prompt prefix that prompt caching stores"),
)


class _AnnouncingServer(uvicorn.Server):
    """Prints one line once the socket is bound (uvicorn logs only warnings)."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            bound = [sock.getsockname()[1] for srv in getattr(self, "servers", []) for sock in (srv.sockets or ())]
            host, port = self.config.host, bound[0] if bound else self.config.port
            print(f"llm_simulator listening on http://{host}:{port}", file=sys.stderr, flush=True)


def env_name(flag: str) -> str:
    """Environment variable for a flag: ``fault-rate`` -> ``LLM_SIM_FAULT_RATE``."""
    return ENV_PREFIX + flag.upper().replace("-", "_")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m include.llm_simulator",
                                     description="OpenAI/Anthropic-compatible LLM simulator")
    for flag, kind, default, text in _FLAGS:
        name = env_name(flag)
        raw = os.environ.get(name, default)
        try:
            value = kind(raw)
        except ValueError:
            raise ValueError(f"{name}={raw!r} is not a valid {getattr(kind, '__name__', 'value')}") from None
        parser.add_argument(f"--{flag}", type=kind, default=value, help=f"{text} [env {name}, default {default!r}]")
    echo = os.environ.get(env_name("echo-key"), "").strip().lower() in {"1", "true", "yes", "on"}
    parser.add_argument("--echo-key", action=argparse.BooleanOptionalAction, default=echo,
                        help="put the request's API key into error bodies and answers (leak tests) "
                             f"[env {env_name('echo-key')}]")
    return parser


def settings_from_args(argv: Sequence[str] | None = None) -> SimulatorSettings:
    """Parse flags (falling back to the environment) into settings."""
    args = build_parser().parse_args(argv)
    kinds = tuple(k for k in args.fault_kinds.split(",") if k.strip())
    return SimulatorSettings(
        host=args.host, port=args.port, latency=args.latency, latency_jitter=args.latency_jitter,
        log_path=args.log or None, rpm=args.rpm, tpm=args.tpm, fault_rate=args.fault_rate,
        fault_kinds=kinds, seed=args.seed, api_key=args.api_key or None, cache_min_tokens=args.cache_min_tokens,
        window_seconds=args.window_seconds, max_concurrent=args.max_concurrent, echo_key=args.echo_key,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Run the simulator until interrupted."""
    try:
        settings = settings_from_args(argv)
    except ValueError as exc:
        print(f"llm_simulator: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    config = uvicorn.Config(
        create_app(settings), host=settings.host, port=settings.port, log_level="warning", access_log=False,
        backlog=2048, timeout_keep_alive=75, timeout_graceful_shutdown=3, proxy_headers=False,
        server_header=False, limit_concurrency=None,
    )
    _AnnouncingServer(config).run()


if __name__ == "__main__":
    main()
