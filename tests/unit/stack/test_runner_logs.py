"""The trigger runner's queued log channel: a write returns while the supervisor does not read, the
lines arrive whole and in order, and what is queued is sent when the process exits; a finished
trigger's log file stays open until its last line, which the runner's marker follows, is read."""

from __future__ import annotations

import hashlib
import inspect
import json
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


class LogFile:
    """A trigger's log file, as the supervisor's logger cache holds it."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.closed = False

    def upload_to_remote(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def routed_lines(self):  # Airflow's reader routes a line to its trigger's open file, else to its own log
    while True:
        line = yield
        event = json.loads(bytes(line))
        target = self.logger_cache.get(event["trigger_id"])
        (target.lines if target else self.own_log).append(event["event"])


def supervisor(monkeypatch, *trigger_ids: int):
    """Airflow's supervisor with what its request handler and log reader use; the reader's routing
    is stubbed (Airflow's own reconfigures the process's logging)."""
    from collections import deque

    from airflow.jobs.triggerer_job_runner import TriggerRunnerSupervisor

    monkeypatch.setattr(TriggerRunnerSupervisor, "_process_log_messages_from_subprocess", routed_lines)
    monkeypatch.setattr(TriggerRunnerSupervisor, "_handle_request", TriggerRunnerSupervisor._handle_request)
    monkeypatch.setattr(TriggerRunnerSupervisor, "send_msg", lambda self, msg, request_id, **kw: None)
    monkeypatch.setattr(TriggerRunnerSupervisor, "own_log", [], raising=False)
    sup = object.__new__(TriggerRunnerSupervisor)
    for name, value in {"events": deque(), "failed_triggers": deque(), "running_triggers": set(trigger_ids),
                        "cancelling_triggers": set(), "creating_triggers": deque(),
                        "persisted_event_seqs": deque(),
                        "logger_cache": {trigger_id: LogFile() for trigger_id in trigger_ids}}.items():
        object.__setattr__(sup, name, value)
    assert runner_logs.close_logs_after_their_last_line() is True
    return sup


def line(trigger_id: int, event: str) -> bytes:
    return json.dumps({"trigger_id": trigger_id, "event": event}).encode() + b"\n"


def test_a_finished_triggers_last_lines_reach_its_file_when_they_arrive_after_the_finish_report(monkeypatch):
    from airflow.jobs.triggerer_job_runner import messages

    sup = supervisor(monkeypatch, 7, 8)
    files = dict(sup.logger_cache)
    reader = sup._process_log_messages_from_subprocess()
    next(reader)
    reader.send(line(7, "Agent agent_7: gpt-4o-mini"))
    # The runner reports 7 and 8 finished; their last lines and the marker are still in the log socket.
    sup._handle_request(messages.TriggerStateChanges(finished=[7, 8]), log=None, req_id=1)
    assert 7 not in sup.running_triggers and not files[7].closed and not files[8].closed
    reader.send(line(7, "Agent agent_7 finished: 1 calls, $0.000023"))
    reader.send(line(8, "Trigger fired event"))
    reader.send(runner_logs.LOGS_END + b"[7, 8]}\n")
    assert files[7].lines == ["Agent agent_7: gpt-4o-mini", "Agent agent_7 finished: 1 calls, $0.000023"]
    assert files[8].lines == ["Trigger fired event"] and sup.own_log == []
    assert files[7].closed and files[8].closed and sup.logger_cache == {}


def test_a_marker_read_before_the_finish_report_closes_the_file_once(monkeypatch):
    from airflow.jobs.triggerer_job_runner import messages

    sup = supervisor(monkeypatch, 3)
    file = sup.logger_cache[3]
    reader = sup._process_log_messages_from_subprocess()
    next(reader)
    reader.send(line(3, "trigger completed"))
    reader.send(runner_logs.LOGS_END + b"[3]}\n")
    assert file.closed and file.lines == ["trigger completed"]
    sup._handle_request(messages.TriggerStateChanges(finished=[3]), log=None, req_id=1)
    assert sup.logger_cache == {} and 3 not in sup.running_triggers


def test_a_file_whose_marker_never_comes_closes_after_the_wait(monkeypatch):
    from airflow.jobs.triggerer_job_runner import messages

    clock = [1000.0]
    monkeypatch.setattr(runner_logs.time, "monotonic", lambda: clock[0])
    sup = supervisor(monkeypatch, 5)
    file = sup.logger_cache[5]
    sup._handle_request(messages.TriggerStateChanges(finished=[5]), log=None, req_id=1)
    clock[0] += runner_logs.AWAIT_LAST_LINE_S / 2
    sup._handle_request(messages.TriggerStateChanges(), log=None, req_id=2)
    assert not file.closed
    clock[0] += runner_logs.AWAIT_LAST_LINE_S
    sup._handle_request(messages.TriggerStateChanges(), log=None, req_id=3)
    assert file.closed and sup.logger_cache == {}


def test_the_runner_queues_the_marker_after_the_lines_already_queued(monkeypatch):
    runner_end, theirs = socket.socketpair()
    channel = QueuedChannel(runner_end.detach())
    monkeypatch.setattr(runner_logs, "_channel", channel)
    channel.write(line(4, "Trigger fired event"))
    runner_logs.mark_logs_end([9, 4])
    runner_logs.mark_logs_end([])  # a turn with nothing finished sends nothing
    channel.close()
    os.close(channel.fileno())
    received = read_all(theirs).splitlines()
    assert received == [line(4, "Trigger fired event").rstrip(), runner_logs.LOGS_END + b"[4, 9]}"]


def test_it_stands_in_for_the_airflow_supervisor_methods_it_was_written_against():
    from airflow.jobs.triggerer_job_runner import TriggerRunnerSupervisor

    found = {name: hashlib.sha256(inspect.getsource(getattr(TriggerRunnerSupervisor, name.split(".")[1]))
                                  .encode()).hexdigest() for name in runner_logs.PINNED_SUPERVISOR_SOURCES}
    changed = sorted(name for name, digest in found.items() if runner_logs.PINNED_SUPERVISOR_SOURCES[name] != digest)
    assert not changed, (f"Airflow changed {changed}: check that a finished trigger's log file still closes in "
                         "_handle_request and lines are still routed by logger_cache, then update the pins")
