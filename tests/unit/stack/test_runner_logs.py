"""The trigger runner's queued log channel: a write returns while the supervisor does not read, the
lines arrive whole and in order, and what is queued is sent when the process exits."""

from __future__ import annotations

import hashlib
import inspect
import os
import socket
import subprocess
import sys
import threading

from erp_agents.stack import runner_logs
from erp_agents.stack.runner_logs import QueuedChannel


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def test_writes_return_while_nobody_reads_and_arrive_in_order():
    runner_end, supervisor_end = socket.socketpair()
    channel = QueuedChannel(runner_end.detach())
    lines = [f"{i:06d} {'x' * 1000}\n".encode() for i in range(2000)]  # ~2 MB: ten times the socket's buffer

    def log_everything() -> None:
        for line in lines:
            channel.write(line)
            channel.flush()

    writer = threading.Thread(target=log_everything, daemon=True)
    writer.start()
    writer.join(5.0)
    assert not writer.is_alive()  # a blocking write would wait here for the reader forever
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(read_all(supervisor_end)))
    reader.start()
    channel.close()
    os.close(channel.fileno())  # Airflow closes the child's end as the child exits
    reader.join(10)
    assert received == [b"".join(lines)]


def test_a_forked_runner_sends_its_last_lines_before_it_exits():
    """Airflow's ``_fork_main`` runs the atexit handlers registered after the fork, then ``os._exit``."""
    code = """
import atexit, os, socket, sys
sys.path[:0] = sys.argv[1:]
from erp_agents.stack.runner_logs import QueuedChannel
child_end, parent_end = socket.socketpair()
pid = os.fork()
if pid == 0:
    parent_end.close()
    channel = QueuedChannel(child_end.detach())
    atexit.register(channel.close)
    for i in range(500):
        channel.write(b"line %d\\n" % i)
    atexit._run_exitfuncs()
    os._exit(0)
child_end.close()
data = b""
while chunk := parent_end.recv(65536):
    data += chunk
os.waitpid(pid, 0)
print(len(data.splitlines()), data.splitlines()[-1].decode())
"""
    out = subprocess.run([sys.executable, "-c", code, *sys.path], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["500", "line", "499"], out.stderr


def test_it_stands_in_for_the_airflow_channel_it_was_written_against():
    from airflow.sdk.execution_time import supervisor

    source = inspect.getsource(getattr(supervisor, runner_logs.PINNED_CHANNEL_SOURCE))
    assert hashlib.sha256(source.encode()).hexdigest() == runner_logs.PINNED_CHANNEL_SHA, (
        "Airflow changed how a forked child sends its logs: check that the channel is still an unbuffered "
        "socket written from the logging thread, then update PINNED_CHANNEL_SHA")
