"""Dropping a connection without sending any HTTP response.

An exception raised by an ASGI app makes uvicorn send a 500, so it cannot
simulate a dropped connection. Instead the app keeps uvicorn's own ``send``
callable in the scope (``SimulatorApp``); it is a bound method of uvicorn's
request cycle, whose ``transport`` can be closed directly. Once the transport
is closed uvicorn marks the cycle disconnected and discards anything the app
sends afterwards, so the client sees "server disconnected without sending a
response". Under other servers a truncated response (declared length never
reached) is sent instead, which clients also report as a connection error.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

RAW_SEND_KEY = "llm_simulator.raw_send"


class SimulatorApp(FastAPI):
    """FastAPI app that remembers the server's raw ``send`` per request."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[RAW_SEND_KEY] = send
        await super().__call__(scope, receive, send)


class TruncatedResponse(Response):
    """Starts a response and stops mid-body so the server closes the socket."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
        })
        await send({"type": "http.response.body", "body": b'{"id": ', "more_body": True})


def server_transport(scope: Scope) -> Any | None:
    """uvicorn's transport for this request, when reachable."""
    cycle = getattr(scope.get(RAW_SEND_KEY), "__self__", None)
    transport = getattr(cycle, "transport", None)
    return transport if transport is not None and hasattr(transport, "close") else None


async def wait_for_disconnect(request: Request) -> None:
    """Return once the client has gone away (body must already be read)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def drop_connection(request: Request) -> Response:
    """Close the connection; the returned response is never delivered."""
    transport = server_transport(request.scope)
    if transport is None:
        return TruncatedResponse()
    transport.close()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(wait_for_disconnect(request), timeout=5.0)
    return Response(status_code=204)
