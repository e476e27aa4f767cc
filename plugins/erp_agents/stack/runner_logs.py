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
periodically flushed) log channel for the trigger runner. Applied only to the Airflow versions it was
checked against; the source it replaces is pinned (``PINNED_CHANNEL_SOURCE``,
tests/unit/stack/test_runner_logs.py).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections import deque

log = logging.getLogger(__name__)

PATCHED_AIRFLOW = ("3.3.",)
PINNED_CHANNEL_SOURCE = "_configure_logs_over_json_channel"
PINNED_CHANNEL_SHA = "6498da8a7e3cac0be0c1d8550cbf31a9fc08990ba677825c4fdd527341fff33d"
CLOSE_WAIT_S = 5.0


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


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def configure_logs_over_a_queued_channel(log_fd: int) -> None:
    """Airflow's ``_configure_logs_over_json_channel`` with the channel queued (see the module)."""
    from airflow.sdk.log import configure_logging, reset_logging

    channel = QueuedChannel(log_fd)
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
