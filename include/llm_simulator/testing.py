"""Run the simulator as a real subprocess for tests, demos and benchmarks.

Example::

    with running_simulator(latency=0.05, rpm=100) as sim:
        client = openai.OpenAI(base_url=sim.openai_base_url, api_key="test-key")
        ...
        assert len(sim.requests()) == 1

A real server process (not an in-process app) is used so that concurrency,
connection drops and client timeouts behave exactly as with a remote API.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 20.0
PORT_ATTEMPTS = 3
_FLAG_NAMES = {
    "latency": "--latency", "latency_jitter": "--latency-jitter", "rpm": "--rpm", "tpm": "--tpm",
    "fault_rate": "--fault-rate", "fault_kinds": "--fault-kinds", "seed": "--seed", "api_key": "--api-key",
    "cache_min_tokens": "--cache-min-tokens", "window_seconds": "--window-seconds",
    "max_concurrent": "--max-concurrent", "echo_key": "--echo-key",
}


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (bind to port 0, then release)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class SimulatorHandle:
    """A running simulator process and helpers for its control endpoints."""

    host: str
    port: int
    log_path: Path
    process: subprocess.Popen[bytes]
    _http: httpx.Client | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        """Root URL; use as the Anthropic SDK ``base_url``."""
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """``base_url + "/v1"``; use as the OpenAI SDK ``base_url``."""
        return self.base_url + "/v1"

    def _call(self, method: str, path: str, json: Any = None) -> Any:
        if self._http is None:
            self._http = httpx.Client(base_url=self.base_url, timeout=10.0)
        response = self._http.request(method, path, json=json)
        response.raise_for_status()
        return response.json()

    def close(self) -> None:
        """Release the control-endpoint HTTP client."""
        if self._http is not None:
            self._http.close()
            self._http = None

    def requests(self) -> list[dict[str, Any]]:
        """Logged model requests since start or the last reset."""
        return self._call("GET", "/_sim/requests")

    def reset(self) -> None:
        """Clear the memory log, rate-limit windows, fault scripts and prompt cache."""
        self._call("POST", "/_sim/reset")

    def script(self, responses: Sequence[str], model: str | None = None) -> dict[str, Any]:
        """Queue scripted outcomes for the next model requests (optionally one model's)."""
        return self._call("POST", "/_sim/script", {"responses": list(responses), "model": model})

    def stats(self) -> dict[str, Any]:
        """Counts by status/model and in-flight concurrency."""
        return self._call("GET", "/_sim/stats")


def _command(host: str, port: int, log_path: Path, settings: dict[str, Any]) -> list[str]:
    command = [sys.executable, "-m", "include.llm_simulator", "--host", host, "--port", str(port),
               "--log", str(log_path)]
    for key, value in settings.items():
        if key not in _FLAG_NAMES:
            raise TypeError(f"unknown simulator setting: {key!r}; known: {sorted(_FLAG_NAMES)}")
        if key == "fault_kinds" and not isinstance(value, str):
            value = ",".join(str(v) for v in value)
        if key == "echo_key":
            command += ["--echo-key" if value else "--no-echo-key"]
            continue
        command += [_FLAG_NAMES[key], "" if value is None else str(value)]
    return command


def _child_env() -> dict[str, str]:
    """Environment without ``LLM_SIM_*`` so only the given settings apply."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_SIM_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class _PortTaken(RuntimeError):
    """The chosen port was grabbed by someone else before the server bound it."""


def _wait_healthy(handle: SimulatorHandle, output_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1.0) as client:
        while time.monotonic() < deadline and handle.process.poll() is None:
            try:
                if client.get(handle.base_url + "/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
    output = output_path.read_text(encoding="utf-8", errors="replace")
    exited = handle.process.poll() is not None
    state = f"exited with code {handle.process.returncode}" if exited else f"not healthy after {timeout:.0f}s"
    error = _PortTaken if exited and "address already in use" in output.lower() else RuntimeError
    raise error(f"LLM simulator on port {handle.port} {state}; output:\n{output}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def running_simulator(*, host: str = "127.0.0.1", port: int | None = None, log_path: str | Path | None = None,
                      startup_timeout: float = STARTUP_TIMEOUT, **settings: Any) -> Iterator[SimulatorHandle]:
    """Start the simulator subprocess, yield a handle, stop it on exit.

    ``settings`` are CLI settings by their Python names: ``latency``,
    ``latency_jitter``, ``rpm``, ``tpm``, ``fault_rate``, ``fault_kinds``
    (list or comma string), ``seed``, ``api_key``, ``cache_min_tokens``, ``window_seconds``,
    ``max_concurrent``, ``echo_key`` (bool). Without ``log_path`` the
    JSONL log goes to a temporary directory removed on exit. ``LLM_SIM_*``
    environment variables are not passed on. Raises ``RuntimeError`` with the
    server output if it is not healthy in time.
    """
    with tempfile.TemporaryDirectory(prefix="llm-sim-") as tmp:
        log = Path(log_path) if log_path is not None else Path(tmp) / "sim.jsonl"
        output_path = Path(tmp) / "server.out"
        for attempt in range(PORT_ATTEMPTS):
            chosen = port if port is not None else free_port(host)
            with output_path.open("wb") as output:
                process = subprocess.Popen(
                    _command(host, chosen, log, settings), cwd=REPO_ROOT, stdout=output, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, env=_child_env(),
                )
            handle = SimulatorHandle(host=host, port=chosen, log_path=log, process=process)
            try:
                _wait_healthy(handle, output_path, startup_timeout)
                break
            except _PortTaken:
                _stop(process)
                if port is not None or attempt == PORT_ATTEMPTS - 1:
                    raise
            except BaseException:
                _stop(process)
                raise
        try:
            yield handle
        finally:
            handle.close()
            _stop(process)
