"""The triggerer's supervisor keeps reading its trigger runner's logs while it sends the runner a reply.

Airflow 3.3's supervisor answers the runner (new triggers with their DAG, XCom reads) with a blocking
``sendall`` on the requests socket, and the runner writes its log lines with a blocking write on the
logs socket from its event loop. A reply larger than the socket buffer (new triggers with a large
serialized DAG, a big XCom) waits until the runner reads it; the runner reads it on its event loop;
and if that loop is at that moment writing a log line into a full logs socket, it waits for the
supervisor to read the logs, which it never does while it sends. Both wait forever: the triggerer's
supervisor and runner stopped in exactly those two calls (py-spy) while 500 agents logged and their
workflows' summaries started, and every trigger of that triggerer timed out (``TaskDeferralTimeout``).

Here a reply is sent without blocking: while the runner does not take it, the supervisor reads what
the runner writes on its logs, stdout and stderr sockets, with the handlers Airflow registered for
them, and sends the rest when the socket takes more. Requests are not read meanwhile (one reply at a
time, as in Airflow). The upstream change it stands in for: a supervisor that never blocks on one
socket while the other end blocks on another. Applied only to the Airflow versions it was checked
against; the source it replaces is pinned in ``PINNED_SEND_SOURCES``
(tests/unit/stack/test_supervisor_send.py fails when it changes).
"""

from __future__ import annotations

import logging
import selectors
from typing import Any

log = logging.getLogger(__name__)

PATCHED_AIRFLOW = ("3.3.",)
PINNED_SEND_SOURCES = {
    "WatchedSubprocess.send_msg": "d3c61a83d1b9e4ef69369486341758c1ad4a9932423208f4c38ba520ef457ca3",
}


def send_reading_logs(supervisor: Any, data: bytes) -> None:
    """``supervisor.stdin.sendall(data)``, reading the runner's other sockets whenever it would block."""
    sock = supervisor.stdin
    timeout = sock.gettimeout()
    view = memoryview(data)
    sock.setblocking(False)
    try:
        while view:
            try:
                view = view[sock.send(view):]
            except BlockingIOError:
                _read_the_other_sockets_until_writable(supervisor, sock)
    finally:
        sock.settimeout(timeout)


def _read_the_other_sockets_until_writable(supervisor: Any, sock: Any) -> None:
    """Wait until ``sock`` takes more; a runner that exited makes it writable, and the send then
    raises as Airflow's ``sendall`` would."""
    waiting = selectors.DefaultSelector()
    try:
        waiting.register(sock, selectors.EVENT_WRITE, None)
        for key in list(supervisor.selector.get_map().values()):
            if key.fileobj is not sock and key.fileobj.fileno() >= 0:  # the logs, stdout and stderr readers
                waiting.register(key.fileobj, selectors.EVENT_READ, key)
        while True:
            for ready, _ in waiting.select():
                if ready.data is None:
                    return  # the runner took some: send more
                _read(waiting, ready.data)
    finally:
        waiting.close()


def _read(waiting: selectors.BaseSelector, key: selectors.SelectorKey) -> None:
    """What ``_service_subprocess`` does for one readable socket, including its end of file."""
    handler, on_close = key.data
    try:
        need_more = handler(key.fileobj)
    except (BrokenPipeError, ConnectionResetError):
        need_more = False
    if not need_more:
        waiting.unregister(key.fileobj)
        on_close(key.fileobj)
        key.fileobj.close()


def send_without_blocking_the_runner() -> bool:
    """Give the triggerer's supervisor the send above (see the module's docstring); True when applied."""
    from airflow import __version__ as airflow_version
    from airflow.jobs.triggerer_job_runner import TriggerRunnerSupervisor

    if not airflow_version.startswith(PATCHED_AIRFLOW):
        log.warning("Airflow %s: the triggerer's supervisor sends its replies with a blocking write", airflow_version)
        return False
    from airflow.sdk.execution_time.supervisor import _ResponseFrame

    def send_msg(self: Any, msg: Any, request_id: int, error: Any = None, **dump_opts: Any) -> None:
        """Airflow's ``WatchedSubprocess.send_msg``, but for the last line (``sendall``)."""
        if msg:
            frame = _ResponseFrame(id=request_id, body=self._serialize_response(msg, **dump_opts))
        else:
            err_resp = self._serialize_response(error) if error else None
            frame = _ResponseFrame(id=request_id, error=err_resp)
        send_reading_logs(self, frame.as_bytes())

    TriggerRunnerSupervisor.send_msg = send_msg  # type: ignore[method-assign]
    return True
