"""The trigger runner's log lines are sent by a thread of their own, so its event loop never waits
for the supervisor to read them.

Airflow 3.3's forked children write their structured logs to the supervisor over a socket opened
unbuffered (``_configure_logs_over_json_channel``): each line is one blocking ``write`` from the
thread that logged it. In the trigger runner that thread is the event loop every agent shares, and
the supervisor reads the socket only between its own database passes (claiming triggers, recording
events). Once the socket's buffer (about 200 KB by default on Linux) is full, every agent stops at its
next log line until the supervisor comes back: py-spy put 10 % of the runner's samples of a 500-agent
burst in that ``write``, and earlier in this project the same wait deadlocked a triggerer
(``supervisor_send``).

Here the runner's log channel is a ``QueuedChannel``: a line is queued in memory and a daemon thread
writes what has queued, in order, as one ``write``. Lines are never reordered or dropped while the
process lives; ``atexit`` (which Airflow runs in a forked child before it closes the channel) sends
what is left. A runner killed with SIGKILL loses the lines still queued, as it would lose those in
the socket's buffer. The upstream change it stands in for: a non-blocking (or buffered and
periodically flushed) log channel for the trigger runner.

A trigger's last lines reach its own log file. The supervisor routes each line to the file of the
trigger that wrote it, and closes that file (uploading it, with remote logging) as soon as the runner
reports the trigger finished. That report travels on another socket than the lines, so a trigger's
last lines (for an agent: its request, its tokens and cost, "Trigger fired event") could arrive after
its file was closed and land in the triggerer's own log instead: under a 500-agent burst, a third of
the agents' logs lost their last one to four lines. Here the runner queues a marker after a finished
trigger's lines (``mark_logs_end``, on the same ordered channel, just before it reports the trigger
finished), and the supervisor keeps the file open until it reads that marker
(``close_logs_after_their_last_line``); a marker that never comes (a runner killed) closes the file
after ``AWAIT_LAST_LINE_S``. The upstream change it stands in for: close a trigger's log file in
order with its lines, not when the state message arrives. Applied only to the Airflow versions it was
checked against; the source it replaces is pinned (``PINNED_CHANNEL_SOURCE``,
tests/unit/stack/test_runner_logs.py).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Collection, Generator
from contextlib import suppress
from typing import Any

log = logging.getLogger(__name__)

PATCHED_AIRFLOW = ("3.3.",)
PINNED_CHANNEL_SOURCE = "_configure_logs_over_json_channel"
PINNED_CHANNEL_SHA = "6498da8a7e3cac0be0c1d8550cbf31a9fc08990ba677825c4fdd527341fff33d"
PINNED_SUPERVISOR_SOURCES = {
    "TriggerRunnerSupervisor._handle_request": "76b620264138c7da7ff3a9d49598b502712e6f29b1bca18eba9ddbd95513233b",
    "TriggerRunnerSupervisor._process_log_messages_from_subprocess":
        "532663fa9774ee8c77d9fb277890f27756efc135f33be55277488971176cd6b8",
}
CLOSE_WAIT_S = 5.0
LOGS_END = b'{"erp_agents_logs_end":'  # a line of the runner's log channel: these triggers wrote their last
AWAIT_LAST_LINE_S = 30.0


class QueuedChannel:
    """A write-only binary file over ``fd`` whose ``write`` never blocks: a thread sends the lines."""

    def __init__(self, fd: int) -> None:
        self._raw = os.fdopen(fd, "wb", buffering=0)  # owns the fd, as Airflow's channel did
        self._queued: deque[bytes] = deque()
        self._ready = threading.Condition()
        self._closing = False
        self._sender = threading.Thread(target=self._send, name="erp-runner-logs", daemon=True)
        self._sender.start()

    def write(self, data: bytes) -> int:
        with self._ready:
            if self._closing:
                raise ValueError("write to a closed log channel")
            self._queued.append(bytes(data))
            self._ready.notify()
        return len(data)

    def flush(self) -> None:
        """structlog flushes after every line: sending is the thread's job, so this does not wait."""

    def fileno(self) -> int:
        return self._raw.fileno()

    def writable(self) -> bool:
        return True

    @property
    def closed(self) -> bool:
        return self._raw.closed

    def close(self, timeout: float = CLOSE_WAIT_S) -> None:
        """Send what is queued (waiting up to ``timeout``), then stop the thread; the fd stays open
        for its owner (Airflow closes it as the child exits)."""
        with self._ready:
            if self._closing:
                return
            self._closing = True
            self._ready.notify()
        self._sender.join(timeout)

    def _send(self) -> None:
        while True:
            with self._ready:
                while not self._queued and not self._closing:
                    self._ready.wait()
                if not self._queued:
                    return  # closing and everything sent
                chunk = b"".join(self._queued)
                self._queued.clear()
            try:
                _write_all(self._raw.fileno(), chunk)
            except OSError:
                return  # the supervisor is gone: nobody is left to read the logs


_channel: QueuedChannel | None = None  # the trigger runner's, once it has configured its logging


def mark_logs_end(trigger_ids: Collection[int]) -> None:
    """In the trigger runner, before it reports ``trigger_ids`` finished: queue, after their last log
    lines, the marker that lets the supervisor close their log files."""
    if _channel is not None and trigger_ids:
        with suppress(ValueError):  # the channel is closing: the process is exiting
            _channel.write(LOGS_END + json.dumps(sorted(trigger_ids)).encode() + b"}\n")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def configure_logs_over_a_queued_channel(log_fd: int) -> None:
    """Airflow's ``_configure_logs_over_json_channel`` with the channel queued (see the module)."""
    from airflow.sdk.log import configure_logging, reset_logging

    global _channel
    channel = _channel = QueuedChannel(log_fd)
    atexit.register(channel.close)  # Airflow's forked child runs the handlers registered after the fork
    reset_logging()
    configure_logging(json_output=True, output=channel, sending_to_supervisor=True)  # type: ignore[arg-type]


def send_runner_logs_from_a_thread() -> bool:
    """Give the processes this one forks (the trigger runner) a queued log channel; True when applied."""
    from airflow import __version__ as airflow_version

    if not airflow_version.startswith(PATCHED_AIRFLOW):
        log.warning("Airflow %s: the trigger runner writes each log line to its supervisor itself", airflow_version)
        return False
    from airflow.sdk.execution_time import supervisor

    supervisor._configure_logs_over_json_channel = configure_logs_over_a_queued_channel
    return True


# Per supervisor (its class has slots), by id(): finished triggers whose log files wait for the marker.
_awaiting_last_line: dict[int, dict[int, float]] = {}


def _close_log(supervisor: Any, trigger_id: int) -> None:
    """Close (and upload) one trigger's log file, as Airflow does when the trigger finishes."""
    _awaiting_last_line.get(id(supervisor), {}).pop(trigger_id, None)
    if factory := supervisor.logger_cache.pop(trigger_id, None):
        try:
            factory.upload_to_remote()
        except Exception:
            log.exception("Failed to upload trigger logs to remote (trigger %s)", trigger_id)
        finally:
            factory.close()


def close_logs_after_their_last_line() -> bool:
    """Keep a finished trigger's log file open until the runner's marker says its last line was read
    (see the module); True when applied. Needs the runner to send the markers: its loop
    (``triggerer_loop.sync_runner_often``) on the queued channel (``send_runner_logs_from_a_thread``)."""
    from airflow import __version__ as airflow_version

    if not airflow_version.startswith(PATCHED_AIRFLOW):
        log.warning("Airflow %s: a trigger's log file closes when it finishes, as Airflow does it", airflow_version)
        return False
    from airflow.jobs.triggerer_job_runner import TriggerRunnerSupervisor, messages

    read_lines = TriggerRunnerSupervisor._process_log_messages_from_subprocess
    handle_request = TriggerRunnerSupervisor._handle_request

    def read_lines_until_the_marker(self: Any) -> Generator[None, bytes | bytearray, None]:
        airflows = read_lines(self)
        next(airflows)
        while True:
            line = yield
            if line.startswith(LOGS_END):
                for trigger_id in json.loads(bytes(line))["erp_agents_logs_end"]:
                    _close_log(self, trigger_id)
            else:
                airflows.send(line)

    def handle_request_keeping_logs_open(self: Any, msg: Any, log: Any, req_id: int) -> None:
        if not isinstance(msg, messages.TriggerStateChanges):  # the runner's other requests (XCom reads...)
            handle_request(self, msg, log, req_id)
            return
        kept = {}
        for trigger_id in msg.finished or ():
            if (factory := self.logger_cache.pop(trigger_id, None)) is not None:
                kept[trigger_id] = factory  # the marker has not come yet: Airflow's handler must not close it
        try:
            handle_request(self, msg, log, req_id)
        finally:
            self.logger_cache.update(kept)
            awaiting, now = _awaiting_last_line.setdefault(id(self), {}), time.monotonic()
            awaiting.update(dict.fromkeys(kept, now + AWAIT_LAST_LINE_S))
            for trigger_id in [t for t, deadline in awaiting.items() if deadline <= now]:
                _close_log(self, trigger_id)  # no marker: the runner that wrote it is gone

    TriggerRunnerSupervisor._process_log_messages_from_subprocess = read_lines_until_the_marker  # type: ignore[method-assign]
    TriggerRunnerSupervisor._handle_request = handle_request_keeping_logs_open  # type: ignore[method-assign]
    return True
