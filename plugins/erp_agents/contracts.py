"""What crosses a process boundary: typed, frozen, versioned pydantic models.

Trigger kwargs and ``StartTriggerArgs`` live in Airflow's metadata DB across deploys, events travel
from the triggerer to a worker, XComs and summaries are read by other tasks, the engine, the API
and the report. Each of them is one model here, with a ``schema_version``: data of another version
is refused with ``ContractVersionError`` (permanent) naming both versions, never read by guesswork.
No Airflow import, no I/O.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from erp_agents.costs.record import CostRecord
from erp_agents.exceptions import ContractVersionError, PermanentAgentError
from erp_agents.spec.models import (
    Agent,
    LedgerConfig,
    LimiterConfig,
    ModelPrice,
    Notifications,
    ProviderConfig,
    RateLimitConfig,
    RetryPolicy,
    bare_model_name,
)

SCHEMA_VERSION = 1

# A limiter scope ("provider:openai", "model:openai:gpt-4o") and the limits that apply to it.
RateLimitScope = tuple[str, RateLimitConfig]


class _Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = SCHEMA_VERSION


_C = TypeVar("_C", bound=_Contract)


def load_contract(model: type[_C], data: Any, what: str) -> _C:
    """Validate ``data`` (a dict or its JSON text) as ``model``, version first.

    A wrong version or shape is a ``PermanentAgentError``: stored data that this code cannot read
    will not become readable on a retry.
    """
    if isinstance(data, model):
        return data
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise PermanentAgentError(f"{what} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PermanentAgentError(f"{what}: expected a {model.__name__} mapping, got {type(data).__name__}")
    found = data.get("schema_version")
    if found != SCHEMA_VERSION:
        raise ContractVersionError(what, found, SCHEMA_VERSION)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise PermanentAgentError(f"{what} is not a valid {model.__name__}: {exc}") from None


class Budgets(_Contract):
    """The money limits one agent's calls count against (USD); None means no limit at that level."""

    agent_cost_limit: float | None = None
    workflow_cost_budget: float | None = None
    module: str
    module_budget: float | None = None
    global_budget: float | None = None


class FanOut(_Contract):
    """A ``for_each`` agent's source and limits, and the id of its items step."""

    items_task_id: str
    tool: str | None = None
    arguments: dict[str, Any] = {}
    agent: str | None = Field(None, description="upstream agent name whose output is the list")
    chunk_size: int = 50
    max_items: int = 2000


class ItemChunk(_Contract):
    """One mapped task's share of a fan-out: items ``start`` .. ``start + len(items) - 1``."""

    start: int = Field(ge=0)
    items: list[Any]


class ItemResult(_Contract):
    """One item of a fan-out chunk: its index in the whole list, its outcome and its own cost record."""

    index: int
    status: Literal["success", "failed"]
    output: Any = None
    error_type: str | None = None
    error: str | None = None
    cost_record: CostRecord


class AgentInvocation(_Contract):
    """Everything one agent run needs, decided at parse time: the plan's hand-off to the trigger."""

    workflow: str
    task_id: str
    agent: Agent
    provider_name: str
    provider: ProviderConfig
    price_overrides: dict[str, ModelPrice] = {}
    upstream: dict[str, str] = Field(default_factory=dict, description="upstream agent name -> task id")
    max_tool_rounds: int = 8
    retry_policy: RetryPolicy = RetryPolicy()
    rate_limits: tuple[RateLimitScope, ...] = ()
    budgets: Budgets
    limiter: LimiterConfig = LimiterConfig()
    ledger: LedgerConfig = LedgerConfig()
    workflow_timeout_s: float | None = None
    log_prompts: bool = False
    fan_out: FanOut | None = None
    fan_out_upstream: tuple[str, ...] = Field((), description="upstream agents that fan out: their output is a list")
    max_parallel_agents: int | None = Field(
        None, ge=1, description="the workflow's cap on one run's agents at once; None when the run cannot reach it")

    @property
    def model(self) -> str:
        return self.agent.llm_config.model

    def price_table(self) -> dict[str, dict[str, float]]:
        """The price overrides in the form ``costs.pricing`` reads (USD per 1K tokens)."""
        # Keyed by the bare name: that is the name a provider's model reports.
        return {bare_model_name(name): price.model_dump(exclude_none=True) for name, price in self.price_overrides.items()}

    def to_json(self) -> str:
        """The compact form stored once per task in the serialized DAG (trigger kwargs). Defaults are
        left out: they belong to the schema version, which is always written."""
        data = self.model_dump(mode="json", exclude_defaults=True)
        data["schema_version"] = self.schema_version
        # Limits are written whole: which tiers a RateLimitConfig sets explicitly is part of its meaning.
        data["rate_limits"] = [[scope, limits.model_dump(mode="json")] for scope, limits in self.rate_limits]
        return json.dumps(data, separators=(",", ":"), sort_keys=True)


class RunContext(_Contract):
    """The run's identity and params: what a prompt may use, built the same on both start paths."""

    dag_id: str
    run_id: str
    task_id: str = ""
    map_index: int = -1
    try_number: int = 1
    logical_date: str | None = None
    ds: str | None = None
    params: dict[str, Any] = {}
    run_started_at: str | None = None  # ISO time the DAG run started: the workflow timeout counts from it

    def seconds_left(self, timeout_s: float | None) -> float | None:
        """Seconds until a timeout counted from the run's start (negative once past); None without a
        timeout or a known start."""
        if timeout_s is None or self.run_started_at is None:
            return None
        started = datetime.fromisoformat(self.run_started_at)
        return timeout_s - (datetime.now(timezone.utc) - started).total_seconds()


class AgentOutput(_Contract):
    """An agent task's ``return_value`` XCom."""

    output: Any
    agent: str
    model: str


class AgentSucceeded(_Contract):
    """Trigger event of a run that started on a worker (``execute``) and ended well."""

    status: Literal["success"] = "success"
    result: AgentOutput
    cost_record: CostRecord
    transcript: Transcript | None = None
    items: list[ItemResult] | None = None  # a fan-out chunk: one result per item, in item order
    transcripts: list[ItemTranscript] | None = None  # a fan-out chunk's, when kept: one per item that succeeded


class Transcript(_Contract):
    """The rendered prompt and the answer, kept in XCom only when ``MonitorConfig.log_prompts`` is on;
    masked and cut to ``TRANSCRIPT_CAP`` characters each."""

    prompt: str
    output: str
    truncated: bool = False


class ItemTranscript(Transcript):
    """One fan-out item's transcript: a chunk keeps one per item that succeeded, in its own XCom (not in
    the ``items`` XCom, which the run summary reads whole)."""

    index: int


class AgentFailed(_Contract):
    """Trigger event of any failed run. ``error_type`` names a class of ``erp_agents.exceptions``;
    that class alone decides whether Airflow retries the task."""

    status: Literal["error"] = "error"
    error_type: str
    message: str
    cost_record: CostRecord
    items: list[ItemResult] | None = None


AgentEvent = Annotated[AgentSucceeded | AgentFailed, Field(discriminator="status")]
_EVENT = TypeAdapter(AgentEvent)


def load_event(data: Any) -> AgentSucceeded | AgentFailed:
    """The typed event a worker gets in ``execute_complete``."""
    if not isinstance(data, dict):
        raise PermanentAgentError(f"agent trigger event: expected a mapping, got {type(data).__name__}")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ContractVersionError("agent trigger event", data.get("schema_version"), SCHEMA_VERSION)
    try:
        return _EVENT.validate_python(data)
    except ValidationError as exc:
        raise PermanentAgentError(f"agent trigger event is not valid: {exc}") from None


class RunOutputs(_Contract):
    """The ``agent_outputs`` XCom of ``workflow_summary``: every agent's answer by task id (a fan-out
    agent's is its item results in item order; None where nothing was pushed), so that a client reads
    a run's results in one request instead of one per agent."""

    outputs: dict[str, Any]


class SummaryAgent(_Contract):
    name: str
    critical: bool
    items_task_id: str | None = None  # set for a fan-out agent: its task is mapped over chunks


class SummaryPlan(_Contract):
    """What ``workflow_summary`` needs from the plan: the agents by task id and the run's rules."""

    workflow: str
    agents: dict[str, SummaryAgent]
    allow_partial_completion: bool = False
    cost_budget: float | None = None
    notifications: Notifications | None = None
    ledger: LedgerConfig = LedgerConfig()


class AgentSummary(_Contract):
    """One agent's row in a run summary."""

    name: str
    state: str
    critical: bool
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    calls: int = 0
    latency_s: float = 0.0
    retries: int = 0
    rate_limited: int = 0
    limiter_wait_s: float = 0.0
    module: str = ""
    model: str = ""
    provider: str = ""
    error_type: str | None = None
    error: str | None = None
    items_total: int | None = None  # fan-out agents only
    items_ok: int | None = None
    items_failed: int | None = None
    chunks: int | None = None


class AgentCounts(_Contract):
    total: int
    succeeded: int
    failed: int


class RunSummary(_Contract):
    """The ``workflow_summary`` XCom: completed / partial / failed, why, and the totals."""

    workflow: str
    run_id: str = ""
    status: Literal["completed", "partial", "failed"]
    reason: str
    agents: AgentCounts
    per_agent: dict[str, AgentSummary]
    total_input_tokens: int
    total_output_tokens: int
    total_tokens: int
    total_cost: float
    total_calls: int
    cost_budget: float | None = None
    ended_by: Literal["budget", "timeout"] | None = None
    ledger_cost: float | None = None  # every try, from the ledger: the source of truth for money
