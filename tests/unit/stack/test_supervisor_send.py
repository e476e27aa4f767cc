"""The supervisor's reply never waits on a runner that waits on its logs: the deadlock, reproduced with
socket pairs as Airflow connects the two processes, with Airflow's send and with ours."""

from __future__ import annotations

import hashlib
import inspect
import selectors
import socket
import threading
from typing import Any

import pytest

from erp_agents.stack import supervisor_send

REPLY = b"r" * (8 << 20)  # far more than a socket buffer: a claim with a large serialized DAG
LOG_LINES = 4000  # ~2 MB of log lines the runner writes before it reads the reply


class Supervisor:
    """The parts of Airflow's supervisor the send uses: the requests socket and the selector of readers."""

    def __init__(self, requests: socket.socket, logs: socket.socket) -> None:
        self.stdin = requests
        self.selector = selectors.DefaultSelector()
        self.selector.register(requests, selectors.EVENT_READ, (lambda s: True, lambda s: None))
        self.read_logs = bytearray()
        self.logs_closed = False

        def read_logs(sock: socket.socket) -> bool:
            chunk = sock.recv(65536)
            self.read_logs += chunk
            return bool(chunk)

        def closed(sock: socket.socket) -> None:  # Airflow's _on_socket_closed
            self.selector.unregister(sock)
            self.logs_closed = True

        self.selector.register(logs, selectors.EVENT_READ, (read_logs, closed))


def _runner(requests: socket.socket, logs: socket.socket, got: dict[str, Any]) -> None:
    """Writes its log lines (blocking, as the runner's loop does), then reads the reply."""
    try:
        for i in range(LOG_LINES):
            logs.sendall(b'{"event": "model_request ... line %05d"}\n' % i + b" " * 450)
        logs.close()
        received = bytearray()
        while len(received) < len(REPLY):
            received += requests.recv(1 << 20)
        got["reply"] = bytes(received)
    except OSError as exc:
        got["error"] = exc


def _pairs(timeout: float | None) -> tuple[socket.socket, ...]:
    sup_requests, run_requests = socket.socketpair()
    sup_logs, run_logs = socket.socketpair()
    for sock in (sup_requests, run_requests, sup_logs, run_logs):
        sock.settimeout(timeout)
    return sup_requests, run_requests, sup_logs, run_logs


def test_airflows_blocking_send_deadlocks_with_a_runner_writing_logs():
    sup_requests, run_requests, sup_logs, run_logs = _pairs(timeout=2.0)  # a timeout instead of forever
    got: dict[str, Any] = {}
    runner = threading.Thread(target=_runner, args=(run_requests, run_logs, got))
    runner.start()
    with pytest.raises(TimeoutError):
        sup_requests.sendall(REPLY)  # what WatchedSubprocess.send_msg does
    runner.join(10)
    assert isinstance(got.get("error"), TimeoutError) and "reply" not in got


def test_our_send_reads_the_logs_while_the_runner_does_not_read_the_reply():
    sup_requests, run_requests, sup_logs, run_logs = _pairs(timeout=None)
    supervisor = Supervisor(sup_requests, sup_logs)
    got: dict[str, Any] = {}
    runner = threading.Thread(target=_runner, args=(run_requests, run_logs, got), daemon=True)
    runner.start()
    done = threading.Thread(target=supervisor_send.send_reading_logs, args=(supervisor, REPLY), daemon=True)
    done.start()
    done.join(30)
    runner.join(30)
    assert not done.is_alive() and not runner.is_alive(), "deadlocked"
    assert got.get("reply") == REPLY
    assert supervisor.read_logs.count(b"model_request") == LOG_LINES and supervisor.logs_closed
    assert sup_requests.gettimeout() is None  # the socket is blocking again, as Airflow reads it


def test_it_stands_in_for_the_airflow_send_it_was_written_against():
    from airflow.jobs.triggerer_job_runner import TriggerRunnerSupervisor
    from airflow.sdk.execution_time.supervisor import WatchedSubprocess

    found = hashlib.sha256(inspect.getsource(WatchedSubprocess.send_msg).encode()).hexdigest()
    assert found == supervisor_send.PINNED_SEND_SOURCES["WatchedSubprocess.send_msg"], (
        "Airflow changed how a supervisor replies: check whether it still blocks in sendall, then update "
        "send_msg here and PINNED_SEND_SOURCES")
    original = TriggerRunnerSupervisor.__dict__.get("send_msg")
    try:
        assert supervisor_send.send_without_blocking_the_runner() is True
        assert TriggerRunnerSupervisor.send_msg is not WatchedSubprocess.send_msg
    finally:
        if original is None:
            del TriggerRunnerSupervisor.send_msg
        else:
            TriggerRunnerSupervisor.send_msg = original
