"""Start, find and stop the deployment's processes by their pid files.

A pid file holds the pid and the process's start time: a file whose process is gone, or whose pid
now belongs to another process (pids are reused), is stale and ignored. Each component runs in a
session of its own, so stopping it stops its children (LocalExecutor workers, gunicorn workers) too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from erp_agents.stack.settings import PROJECT_ROOT, TRIGGERERS, Layout

STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class ProcessInfo:
    """A running component: its pid, start time and memory of its whole process tree (PSS: pages
    shared by forked workers are counted once, where RSS would count them per worker)."""

    name: str
    pid: int
    started: float
    pss_bytes: int


def component_argv(name: str, api_port: int) -> list[str]:
    if name in TRIGGERERS:  # Airflow's, with its execution-API client built at start (see stack.triggerer)
        return [sys.executable, "-m", "erp_agents.stack.triggerer"]
    if name == "scheduler":  # Airflow's, its imports frozen out of the collector's reach (see stack.scheduler)
        return [sys.executable, "-m", "erp_agents.stack.scheduler"]
    args = ["api-server", "--port", str(api_port), "--host", "127.0.0.1"] if name == "api-server" else [name]
    return [sys.executable, "-m", "airflow", *args]


def _pid_file(layout: Layout, name: str) -> Path:
    return layout.pids / f"{name}.pid"


def start(layout: Layout, name: str, argv: list[str], env: dict[str, str]) -> int:
    """Start one component detached (own session), output appended to its log; record its pid."""
    layout.pids.mkdir(parents=True, exist_ok=True)
    layout.logs.mkdir(parents=True, exist_ok=True)
    with layout.log_of(name).open("ab") as log:
        proc = subprocess.Popen(argv, env=env, cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    record = {"pid": proc.pid, "started": psutil.Process(proc.pid).create_time(), "argv": argv}
    _pid_file(layout, name).write_text(json.dumps(record))
    return proc.pid


def running(layout: Layout, name: str) -> ProcessInfo | None:
    """The component if its pid file names a live process started at the recorded time, else None."""
    try:
        record = json.loads(_pid_file(layout, name).read_text())
        proc = psutil.Process(int(record["pid"]))
        if abs(proc.create_time() - float(record["started"])) > 1 or proc.status() == psutil.STATUS_ZOMBIE:
            return None
        mem = _pss(proc) + sum(_pss(c) for c in proc.children(recursive=True))
    except (OSError, ValueError, KeyError, psutil.Error):
        return None
    return ProcessInfo(name, proc.pid, float(record["started"]), mem)


def stale(layout: Layout, name: str) -> bool:
    """A pid file exists but its process is gone (or the pid was reused)."""
    return _pid_file(layout, name).exists() and running(layout, name) is None


def environ(layout: Layout, name: str) -> dict[str, str]:
    """The live environment of a running component (empty when it is not running)."""
    info = running(layout, name)
    if info is None:
        return {}
    try:
        return dict(psutil.Process(info.pid).environ())
    except psutil.Error:
        return {}


def stop(layout: Layout, name: str, timeout: float = STOP_TIMEOUT_S) -> bool:
    """SIGTERM the component's session, SIGKILL what is left after ``timeout``; False if it was not running."""
    info = running(layout, name)
    _pid_file(layout, name).unlink(missing_ok=True)
    if info is None:
        return False
    try:
        group = psutil.Process(info.pid)
        members = [group, *group.children(recursive=True)]
    except psutil.Error:
        return False
    _signal_group(info.pid, signal.SIGTERM)
    _, alive = psutil.wait_procs(members, timeout=timeout)
    if alive:
        _signal_group(info.pid, signal.SIGKILL)
        for proc in alive:
            try:
                proc.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(alive, timeout=5)
    return True


def kill(layout: Layout, name: str) -> int | None:
    """SIGKILL the component's whole session at once, as a lost machine would (no shutdown, no clean-up);
    returns the pid killed, None if it was not running. The pid file stays: the component is dead, not stopped."""
    info = running(layout, name)
    if info is None:
        return None
    _signal_group(info.pid, signal.SIGKILL)
    wait_gone(info.pid, 10)
    return info.pid


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not _alive(pid)


def _alive(pid: int) -> bool:
    """Running: a zombie (dead, not yet reaped by the process that started it) does not count."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _pss(proc: psutil.Process) -> int:
    try:
        return int(proc.memory_full_info().pss)
    except (psutil.Error, AttributeError):
        try:
            return int(proc.memory_info().rss)
        except psutil.Error:
            return 0
