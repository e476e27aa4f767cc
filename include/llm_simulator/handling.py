"""The request flow shared by all API dialects.

Order: read body -> authenticate -> validate -> concurrency slot of the key ->
rate limit of the key -> pick fault -> latency -> fault or answer (the prompt
cache is read and written only for an answer, see ``caching``). Every step's
outcome is logged exactly once, admitted or rejected. Errors before admission
(400/401/429) return immediately, without latency. With ``echo_key`` the
request's key is added to error messages and answer texts sent to the client;
the logged copy carries its hash instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import json
import math
import time
from typing import Any, Mapping, Protocol

from fastapi import Request
from starlette.responses import JSONResponse, Response

from include.llm_simulator.answers import Answer, generate_answer
from include.llm_simulator.caching import NO_CACHE, CachePlan, CacheUsage, namespace
from include.llm_simulator.conversation import Conversation
from include.llm_simulator.drop import drop_connection, wait_for_disconnect
from include.llm_simulator.errors import DEFAULT_MESSAGES, Api, error_body
from include.llm_simulator.faults import DROP, MALFORMED, MALFORMED_BODY, TIMEOUT, error_status
from include.llm_simulator.quota import key_hash
from include.llm_simulator.ratelimit import RateSnapshot, retry_after_headers
from include.llm_simulator.state import SimulatorState
from include.llm_simulator.tokens import prompt_tokens

LATENCY_HEADER = "x-sim-latency"
_NOT_JSON = object()


class InvalidRequest(ValueError):
    """The request body is not acceptable; the message goes to the client."""


class Dialect(Protocol):
    """What differs between the OpenAI and Anthropic wire formats."""

    api: Api
    id_prefix: str
    request_id_header: str

    def api_key(self, headers: Mapping[str, str]) -> str | None: ...

    def parse(self, body: dict[str, Any]) -> Conversation: ...

    def cache_plan(self, body: dict[str, Any], conversation: Conversation) -> CachePlan | None: ...

    def render(self, conversation: Conversation, answer: Answer, request_id: str,
               input_tokens: int, cache: CacheUsage = NO_CACHE) -> dict[str, Any]: ...

    def ratelimit_headers(self, snapshot: RateSnapshot) -> dict[str, str]: ...


def check_api_key(given: str | None, expected: str | None) -> str | None:
    """Error message when the key is missing or wrong; never includes the key."""
    if not given or not given.strip():
        return "missing api key"
    if expected is not None and not hmac.compare_digest(given.encode(), expected.encode()):
        return "invalid api key"
    return None


async def sleep_at_least(delay: float) -> None:
    """Sleep ``delay`` seconds; asyncio may fire a timer up to its clock resolution early, this never returns early."""
    deadline = time.monotonic() + delay
    while (remaining := deadline - time.monotonic()) > 0:
        await asyncio.sleep(remaining)


def log_usage(input_tokens: int, output_tokens: int, cache: CacheUsage) -> dict[str, int]:
    """The log's usage: prompt tokens including any cached ones; cache figures only when non-zero."""
    usage = {"input_tokens": input_tokens, "output_tokens": output_tokens}
    if cache.read or cache.write:
        usage.update(cache_read_tokens=cache.read, cache_write_tokens=cache.write)
    return usage


class _Exchange:
    """One model request being handled: builds responses and the log entry."""

    def __init__(self, request: Request, dialect: Dialect, state: SimulatorState) -> None:
        self.request = request
        self.dialect = dialect
        self.state = state
        self.headers: dict[str, str] = {}
        self.api_key: str | None = None
        self.entry: dict[str, Any] = {
            "id": state.log.new_id(), "api": dialect.api, "path": request.url.path, "model": None,
            "ts_start": time.time(), "ts_end": None, "status": None, "request": None, "response": None,
            "usage": {"input_tokens": 0, "output_tokens": 0}, "fault": None,
            "key_hash": "-", "admitted": False, "tokens_counted": 0, "limited_by": None,
        }
        self.slot: str | None = None
        self.headers[dialect.request_id_header] = self.entry["id"]

    def json(self, status: int, body: dict[str, Any], extra: Mapping[str, str] | None = None) -> Response:
        self.entry["status"] = status
        self.entry["response"] = self._scrub(body)
        return JSONResponse(body, status_code=status, headers={**self.headers, **(extra or {})})

    def error(self, status: int, message: str | None = None, extra: Mapping[str, str] | None = None,
              **kwargs: Any) -> Response:
        text = message
        if self._echoing():
            text = f"{message or DEFAULT_MESSAGES.get(status, 'error')} (api key: {self.api_key})"
        return self.json(status, error_body(self.dialect.api, status, text, **kwargs), extra)

    def _echoing(self) -> bool:
        return self.state.settings.echo_key and bool(self.api_key)

    def _scrub(self, body: Any) -> Any:
        """The body as logged: an echoed key replaced by its hash."""
        if not self._echoing():
            return body
        text = json.dumps(body, ensure_ascii=False)
        return json.loads(text.replace(str(self.api_key), f"<key {self.entry['key_hash']}>"))

    async def run(self) -> Response:
        raw = await self.request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            body = _NOT_JSON
            self.entry["request"] = raw.decode("utf-8", errors="replace")
        else:
            self.entry["request"] = body
        if isinstance(body, dict) and isinstance(body.get("model"), str):
            self.entry["model"] = body["model"]
        self.api_key = self.dialect.api_key(self.request.headers)
        self.entry["key_hash"] = key_hash(self.api_key)
        problem = check_api_key(self.api_key, self.state.settings.api_key)
        if problem:
            return self.error(401, problem)
        if body is _NOT_JSON:
            return self.error(400, "request body is not valid JSON")
        if not isinstance(body, dict):
            return self.error(400, "request body must be a JSON object")
        try:
            conversation = self.dialect.parse(body)
            plan = self.dialect.cache_plan(body, conversation)
            delay = self._latency()
            header_fault = self._header_fault()
        except InvalidRequest as exc:
            return self.error(400, str(exc))
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            return self.error(400, f"malformed request body ({type(exc).__name__})")
        input_tokens = prompt_tokens(conversation)
        return await self._admitted(conversation, plan, input_tokens, delay, header_fault)

    def _header_fault(self) -> str | None:
        try:
            return self.state.faults.header_fault(self.request.headers)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None

    def _latency(self) -> float:
        header = self.request.headers.get(LATENCY_HEADER)
        if header is None:
            return self.state.latency()
        try:
            value = float(header)
        except ValueError:
            raise InvalidRequest(f"invalid {LATENCY_HEADER} header") from None
        if not math.isfinite(value) or value < 0:
            raise InvalidRequest(f"invalid {LATENCY_HEADER} header")
        return value

    async def _admitted(self, conversation: Conversation, plan: CachePlan | None, input_tokens: int,
                        delay: float, header_fault: str | None) -> Response:
        limiter, digest = self.state.limiter, self.entry["key_hash"]
        if not await limiter.enter(digest):
            self.entry["limited_by"] = "concurrency"
            message = f"Too many concurrent requests: at most {limiter.max_concurrent} at once per key."
            kwargs = {"error_type": "requests"} if self.dialect.api == "openai" else {}
            return self.error(429, message, retry_after_headers(1.0), **kwargs)
        self.slot = digest
        cost = input_tokens + (conversation.max_tokens or 0)
        decision = await limiter.acquire(digest, cost)
        if limiter.enabled:
            self.headers.update(self.dialect.ratelimit_headers(decision.snapshot))
        if not decision.allowed:
            self.entry["limited_by"] = decision.limited_by
            message = (f"Rate limit reached for {decision.limited_by} per minute. "
                       f"Please try again in {decision.retry_after:.3f}s.")
            kwargs = {"error_type": decision.limited_by} if self.dialect.api == "openai" else {}
            return self.error(429, message, retry_after_headers(decision.retry_after), **kwargs)
        self.entry.update(admitted=True, tokens_counted=cost)
        fault = header_fault or self.state.faults.next_fault(conversation.model)
        self.entry["fault"] = fault
        if delay:
            await sleep_at_least(delay)
        if fault is not None:
            return await self._fault(fault)
        try:
            answer = generate_answer(conversation, self.dialect.id_prefix)
        except Exception as exc:  # a schema the generator cannot satisfy must not kill the request
            return self.error(500, f"simulator could not build an answer ({type(exc).__name__})")
        if self._echoing() and answer.text is not None:
            answer = dataclasses.replace(answer, text=f"{answer.text} (api key: {self.api_key})")
        space = namespace(self.request.url.path, self.api_key, conversation.model)
        cache = self.state.cache.apply(space, plan, input_tokens)
        self.entry["usage"] = log_usage(input_tokens, answer.output_tokens, cache)
        return self.json(200, self.dialect.render(conversation, answer, self.entry["id"], input_tokens, cache))

    async def _fault(self, fault: str) -> Response:
        if fault == DROP:
            return await drop_connection(self.request)
        if fault == TIMEOUT:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(wait_for_disconnect(self.request), self.state.settings.timeout_seconds)
                return Response(status_code=499)
            return self.error(504, "simulated timeout elapsed")
        if fault == MALFORMED:
            self.entry["status"] = 200
            self.entry["response"] = MALFORMED_BODY.decode()
            return Response(MALFORMED_BODY, status_code=200, media_type="application/json", headers=self.headers)
        status = error_status(fault) or 500
        extra = retry_after_headers(1.0) if status == 429 else None
        return self.error(status, None, extra)


async def handle_model_request(request: Request, dialect: Dialect) -> Response:
    """Serve one model request end to end and log it."""
    state: SimulatorState = request.app.state.sim
    exchange = _Exchange(request, dialect, state)
    state.log.begin()
    try:
        return await exchange.run()
    finally:
        if exchange.slot is not None:
            await state.limiter.leave(exchange.slot)
        exchange.entry["ts_end"] = time.time()
        state.log.end(exchange.entry)
