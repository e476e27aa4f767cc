"""LLM simulator: an OpenAI- and Anthropic-compatible HTTP server for tests.

It stands in for a paid API in tests, demos and benchmarks. The official
``openai`` and ``anthropic`` SDKs (and pydantic-ai on top of them) work
against it unchanged: OpenAI ``base_url=http://127.0.0.1:PORT/v1``,
Anthropic ``base_url=http://127.0.0.1:PORT``.

Running
-------
From the repo root::

    python -m include.llm_simulator --port 8765 --host 127.0.0.1 \\
        --latency 0.0 --latency-jitter 0.0 --log sim.jsonl --rpm 0 --tpm 0 \\
        --fault-rate 0.0 --fault-kinds 500,timeout,malformed,drop --seed 0 --api-key '' \\
        --cache-min-tokens 1024 --window-seconds 60 --max-concurrent 0 --no-echo-key

Each flag can also be set with ``LLM_SIM_<FLAG>`` (e.g. ``LLM_SIM_PORT``,
``LLM_SIM_LATENCY_JITTER``); the flag wins. ``--log ''`` (the default) keeps
the log in memory only. In tests use ``testing.running_simulator``.

Endpoints
---------
* ``POST /v1/chat/completions`` (OpenAI Chat Completions), ``POST /v1/responses``
  (OpenAI Responses, stateless: see ``responses_api``), ``POST /v1/messages``
  (Anthropic), ``GET /v1/models``: non-streaming only; ``stream: true`` gives a 400.
  pydantic-ai's ``AnthropicModel`` switches to streaming when its default
  ``max_tokens`` for a known Claude model is above the SDK's non-streaming
  limit; pass ``settings={"max_tokens": 1024}`` (or use a model name it does
  not know, e.g. ``claude-sim``) to stay non-streaming.
* ``GET /health``; ``GET /_sim/requests``, ``POST /_sim/reset``,
  ``GET /_sim/stats``, ``POST /_sim/script``, ``GET /_sim/script``.

Behaviour
---------
* Answers are deterministic; see ``answers`` for the exact rules (text
  ``[<model>#<digest>] Reviewed: ...``, tool calls for tools named in the
  last user message, ``final_result`` output tools, ``response_format``).
* Usage counts follow ``tokens`` exactly, so tests can recompute them.
* Prompt caching: automatic for OpenAI (``cached_tokens``), explicit through
  ``cache_control`` for Anthropic (``cache_creation_input_tokens``,
  ``cache_read_input_tokens``); per API key and model, in memory, cleared by
  ``/_sim/reset``, prefixes of at least ``--cache-min-tokens``; see ``caching``.
  A request that neither reads nor writes the cache gets the usage it always did.
* Auth: ``Authorization: Bearer <key>`` (OpenAI) or ``x-api-key`` (Anthropic)
  must be non-empty, and equal ``--api-key`` when that is set; failures are
  401 in the provider's error format and never echo the key, unless
  ``--echo-key``: then every error message and answer text carries the key
  (the log carries its hash), so tests that check a key never leaks can fail.
* Latency: ``latency`` +/- uniform ``latency_jitter`` seconds per admitted
  model request, or the value of the ``x-sim-latency`` request header.
* Rate limits per API key: exact sliding window of ``--window-seconds`` (60)
  for ``--rpm``/``--tpm`` and ``--max-concurrent`` requests at once; 429 with
  ``retry-after``/``retry-after-ms`` and the providers' headers, see ``ratelimit``
  and ``quota``.
* Faults: scripted via ``POST /_sim/script``, random, or asked for by the request
  (``x-sim-fault: 503``, ``x-sim-fault-rate: 0.2``, ``x-sim-fault-kinds``), see ``faults``.
* Every model request is logged (JSONL + memory), see ``log``.

Test directives
---------------
Put these in the last user message:

* ``SIM_ECHO``: the answer's summary is the whole last user message verbatim.
* ``tool_name({...json...})``: call ``tool_name`` with exactly these arguments.
* Mentioning a tool's name: call that tool (arguments from its schema).
"""

from include.llm_simulator.app import create_app
from include.llm_simulator.settings import SimulatorSettings

__all__ = ["SimulatorSettings", "create_app"]
