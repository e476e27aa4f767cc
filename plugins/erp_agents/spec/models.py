"""The spec format: pydantic models named as in the original engine's Python API.

These models are the single validator for YAML specs, the lint command, the JSON Schema and the
Python API. Their only I/O is reading an agent's ``prompt_file`` given in Python (the YAML loader
reads it before). Every model forbids unknown keys and is frozen, so a spec cannot be changed
after it was validated.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from erp_agents.spec.prompts import check_prompt_name, prompt_search_path, read_prompt

SUPPORTED_VERSIONS = (1,)
# Validation context key: the YAML loader has read every prompt_file into its agent's prompt_template.
PROMPT_FILES_READ = "prompt_files_read"
ITEMS_STEP_SUFFIX = "__items"  # a fan-out agent's items step is the task <agent>__items
NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]*$"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


def _check_version(value: int) -> int:
    if value not in SUPPORTED_VERSIONS:
        known = ", ".join(str(v) for v in SUPPORTED_VERSIONS)
        raise ValueError(f"unknown spec version {value!r}; supported versions: {known}")
    return value


class RetryStrategy(str, Enum):
    """How the delay between two attempts grows."""

    EXPONENTIAL_BACKOFF = "exponential_backoff"
    LINEAR_BACKOFF = "linear_backoff"
    FIXED_DELAY = "fixed_delay"
    NO_RETRY = "no_retry"


class RetryPolicy(_Spec):
    """Retries of one agent: inside the call for transient errors, then as Airflow task retries."""

    max_retries: int = Field(3, ge=0, le=20)
    strategy: RetryStrategy = RetryStrategy.EXPONENTIAL_BACKOFF
    base_delay: float = Field(1.0, ge=0)
    max_delay: float = Field(60.0, ge=0)
    exponential_base: float = Field(2.0, ge=1.0)
    jitter: bool = True

    @model_validator(mode="after")
    def _delays_ordered(self) -> RetryPolicy:
        if self.max_delay < self.base_delay:
            raise ValueError("max_delay must be at least base_delay")
        return self

    @property
    def attempts(self) -> int:
        """Calls made at most for one request: the first plus its retries (one with NO_RETRY)."""
        return 1 if self.strategy is RetryStrategy.NO_RETRY else 1 + self.max_retries

    def delay_for(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (1-based), without jitter, capped at max_delay."""
        if self.strategy is RetryStrategy.NO_RETRY:
            return 0.0
        if self.strategy is RetryStrategy.EXPONENTIAL_BACKOFF:
            delay = self.base_delay * self.exponential_base ** (attempt - 1)
        elif self.strategy is RetryStrategy.LINEAR_BACKOFF:
            delay = self.base_delay * attempt
        else:
            delay = self.base_delay
        return min(delay, self.max_delay)


class LLMConfig(_Spec):
    """Which model an agent calls and with which sampling settings."""

    model: str = Field(min_length=1)
    provider: str | None = None
    conn_id: str | None = Field(
        None, min_length=1,
        description="The agent's own Airflow connection (another account or key), read as its "
        "provider's type; the provider's conn_id when unset.",
    )
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, gt=0)
    top_p: float | None = Field(None, gt=0, le=1)
    prompt_cache: bool | Literal["5m", "30m", "1h", "12h"] = Field(
        False,
        description="Let the provider cache the stable prompt prefix (instructions, tools, conversation); "
        "a retention tier may be named. Anthropic caches only when asked; OpenAI caches long prompts anyway.",
    )


class InlineFunction(_Spec):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="the JSON Schema (type object) the model is shown; its arguments must satisfy it and the "
        "registered function's signature, whose parameters it must describe; empty: the signature's schema")


class InlineTool(_Spec):
    """The OpenAI function-tool format accepted in specs; bound to a registered tool by name."""

    type: Literal["function"] = "function"
    function: InlineFunction


class ForEach(_Spec):
    """Where a fan-out agent's items come from: a registered tool's result or an upstream agent's output.

    Either must yield a JSON list; it is resolved at run time by the agent's items step."""

    tool: str | None = Field(None, min_length=1, description="a registered tool, e.g. finance.list_open_invoices")
    arguments: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the tool")
    agent: str | None = Field(None, min_length=1, description="an upstream agent (listed in dependencies)")

    @model_validator(mode="after")
    def _one_source(self) -> ForEach:
        if (self.tool is None) == (self.agent is None):
            raise ValueError("for_each needs exactly one source: tool or agent")
        if self.agent is not None and self.arguments:
            raise ValueError("for_each.arguments applies to a tool source only")
        return self


class Agent(_Spec):
    """One LLM agent: a prompt, a model, its dependencies and its limits."""

    name: str = Field(pattern=NAME_PATTERN, max_length=100)
    module: str = Field("Custom", pattern=NAME_PATTERN)
    description: str = ""
    llm_config: LLMConfig
    prompt_template: str = Field(min_length=1)
    prompt_file: str | None = Field(
        None,
        exclude=True,  # a record of where prompt_template came from: dumps carry the template only
        description="a file read into prompt_template (give one of the two): a relative path looked up next "
        "to the spec (in Python: in the current directory), then in $ERP_AGENTS_PROMPT_PATH, then "
        "include/erp/prompts",
    )
    system_prompt: str | None = None
    dependencies: tuple[str, ...] = ()
    tools: tuple[str | InlineTool, ...] = ()
    max_retries: int = Field(3, ge=0, le=20)
    timeout: float = Field(300.0, gt=0)
    cost_limit: float | None = Field(None, gt=0)
    priority: int = Field(5, ge=1, le=100)
    critical: bool = True
    on_upstream_failure: Literal["skip", "run"] = Field(
        "skip",
        description="When an upstream agent failed (partial completion): skip this agent, or run it with "
        "the failed upstream rendered as `agents.<name>.missing` true and `output` null.",
    )
    retry_policy: RetryPolicy | None = None
    output_schema: dict[str, Any] | None = None
    pool: str | None = Field(None, min_length=1, max_length=256)
    for_each: ForEach | None = Field(
        None, description="run this agent once per item of a list; the prompt gets {{ item }} and {{ item_index }}"
    )
    chunk_size: int = Field(50, ge=1, le=1000, description="items per mapped task (for_each)")
    max_items: int = Field(2000, ge=1, le=100_000, description="more items than this fail the agent (for_each)")

    @model_validator(mode="before")
    @classmethod
    def _prompt_from_file(cls, data: Any, info: ValidationInfo) -> Any:
        """The Python API reads prompt_file as the YAML loader does, with the current directory in
        place of the spec's folder; a template given as well would make the file ignored."""
        if not isinstance(data, dict) or not isinstance(data.get("prompt_file"), str):
            return data
        if data.get("prompt_template") is not None:
            if (info.context or {}).get(PROMPT_FILES_READ):
                return data
            raise ValueError("give prompt_template or prompt_file, not both")
        name = data["prompt_file"]
        try:
            check_prompt_name(name)
            template = read_prompt(name, prompt_search_path(None))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ValueError(f"prompt_file {name!r}: cannot read prompt file: {exc}") from None
        return {**data, "prompt_template": template}

    @model_validator(mode="after")
    def _fan_out_fields(self) -> Agent:
        if self.for_each is None:
            # A value other than the default (a dumped agent carries the defaults and must load again).
            given = sorted(name for name in ("chunk_size", "max_items") if name in self.model_fields_set
                           and getattr(self, name) != type(self).model_fields[name].default)
            if given:
                raise ValueError(f"{', '.join(given)} applies to a for_each agent only")
            return self
        source = self.for_each.agent
        if source is not None and source not in self.dependencies:
            raise ValueError(f"for_each.agent {source!r} must be listed in dependencies")
        if source is not None and source.rsplit(".", 1)[-1] == self.name:
            raise ValueError("for_each.agent cannot be the agent itself")
        return self

    @model_validator(mode="after")
    def _one_retry_count(self) -> Agent:
        # With a retry_policy, the policy's own max_retries applies: an agent max_retries would be ignored.
        # Its default value is let through: a dumped agent carries it and must load again.
        default = type(self).model_fields["max_retries"].default
        given = "max_retries" in self.model_fields_set and self.max_retries != default
        if self.retry_policy is not None and given:
            raise ValueError("give max_retries or retry_policy, not both: set retry_policy.max_retries instead")
        return self

    @property
    def items_task_name(self) -> str:
        """The local task id of a fan-out agent's items step."""
        return f"{self.name}{ITEMS_STEP_SUFFIX}"

    @field_validator("dependencies")
    @classmethod
    def _no_duplicate_dependencies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        seen: set[str] = set()
        for dep in value:
            if dep in seen:
                raise ValueError(f"dependency {dep!r} is listed twice")
            seen.add(dep)
        return value

    def tool_names(self) -> tuple[str, ...]:
        return tuple(t if isinstance(t, str) else t.function.name for t in self.tools)


class NotifierSpec(_Spec):
    """One notification target, sent through Airflow's notifier classes."""

    type: Literal["smtp", "webhook"]
    to: str | None = None
    url: str | None = None
    conn_id: str | None = None

    @model_validator(mode="after")
    def _target_given(self) -> NotifierSpec:
        if self.type == "smtp":
            if not self.to:
                raise ValueError("an smtp notifier needs to: the recipient address")
            if self.url is not None:
                raise ValueError("url applies to a webhook notifier only; an smtp notifier sends through conn_id")
            return self
        if self.to is not None:
            raise ValueError("to applies to an smtp notifier only; a webhook notifier posts to url or conn_id")
        if not (self.url or self.conn_id):
            raise ValueError("a webhook notifier needs url or conn_id")
        if self.url is not None and self.conn_id is not None:
            raise ValueError("a webhook notifier takes url or conn_id, not both: url is posted to as is")
        return self


class Notifications(_Spec):
    """Who hears about an agent failure, a failed run and a partially completed run."""

    on_agent_failure: tuple[NotifierSpec, ...] = ()
    on_run_failure: tuple[NotifierSpec, ...] = ()
    on_partial: tuple[NotifierSpec, ...] = ()


class Workflow(_Spec):
    """A set of agents that runs as one Airflow DAG."""

    kind: Literal["Workflow"] = "Workflow"
    version: int = 1
    name: str = Field(pattern=NAME_PATTERN, max_length=200)
    description: str = ""
    module: str = Field("Custom", pattern=NAME_PATTERN, description="the module of every agent that names none")
    agents: tuple[Agent, ...] = Field(min_length=1)
    max_parallel_agents: int = Field(10, ge=1)
    cost_budget: float | None = Field(None, gt=0)
    timeout: float | None = Field(3600.0, gt=0)
    allow_partial_completion: bool = False
    schedule: str | None = None
    wait_for: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    params: dict[str, Any] = Field(default_factory=dict)
    retry_policy: RetryPolicy | None = None
    rate_limit_config: RateLimitConfig | None = Field(
        None, description="lowers the engine's limits for this workflow's agents; never raises them"
    )
    notifications: Notifications | None = None

    @model_validator(mode="before")
    @classmethod
    def _agents_inherit_module(cls, data: Any) -> Any:
        """An agent without a module of its own is in the workflow's: its TaskGroup, task id, module
        budget and metrics labels all follow."""
        if not isinstance(data, dict) or not isinstance(data.get("agents"), (list, tuple)):
            return data
        module = data.get("module")
        if not isinstance(module, str) or re.fullmatch(NAME_PATTERN, module) is None:
            return data  # absent (agents keep the same default) or invalid (the field reports it)
        agents: list[Any] = []
        for agent in data["agents"]:
            if isinstance(agent, dict) and "module" not in agent:
                agent = {**agent, "module": module}
            elif isinstance(agent, Agent) and "module" not in agent.model_fields_set:
                agent = agent.model_copy(update={"module": module})
            agents.append(agent)
        return {**data, "agents": agents}

    @field_validator("cost_budget")
    @classmethod
    def _agent_limits_within_budget(cls, budget: float | None, info: ValidationInfo) -> float | None:
        if budget is None:
            return budget
        for agent in info.data.get("agents") or ():
            if agent.cost_limit is not None and agent.cost_limit > budget:
                raise ValueError(
                    f"agent {agent.name!r} has cost_limit {agent.cost_limit}, above the workflow's cost_budget {budget}"
                )
        return budget

    @field_validator("version")
    @classmethod
    def _version_known(cls, value: int) -> int:
        return _check_version(value)

    @model_validator(mode="after")
    def _schedule_or_wait_for(self) -> Workflow:
        if self.schedule and self.wait_for:
            raise ValueError("give schedule or wait_for, not both: wait_for schedules on the other workflows")
        if self.name in self.wait_for:
            raise ValueError(f"workflow {self.name!r} cannot wait for itself")
        return self

    @field_validator("agents")
    @classmethod
    def _unique_agent_names(cls, agents: tuple[Agent, ...]) -> tuple[Agent, ...]:
        seen: set[str] = set()
        for agent in agents:
            if agent.name in seen:
                raise ValueError(f"duplicate agent name {agent.name!r}")
            seen.add(agent.name)
        items_steps = {a.items_task_name for a in agents if a.for_each is not None}
        for agent in agents:
            if agent.name in items_steps:
                raise ValueError(f"agent name {agent.name!r} is taken by the items step of a for_each agent")
        return agents


RATE_FIELDS = ("requests_per_minute", "requests_per_hour", "requests_per_day", "tokens_per_minute",
                "tokens_per_day", "concurrent_requests")


class RateLimitConfig(_Spec):
    """Limits of one provider account (or one model on it); null means no limit on that tier."""

    requests_per_minute: int | None = Field(60, gt=0)
    requests_per_hour: int | None = Field(3000, gt=0)
    requests_per_day: int | None = Field(50000, gt=0)
    tokens_per_minute: int | None = Field(100000, gt=0)
    tokens_per_day: int | None = Field(None, gt=0)
    concurrent_requests: int | None = Field(10, ge=1)

    def explicit(self) -> RateLimitConfig:
        """Only the tiers written in the spec: a per-model or per-workflow block that names one tier must
        not bring the seed's defaults for the others with it."""
        return RateLimitConfig.model_validate({name: getattr(self, name) if name in self.model_fields_set else None
                                               for name in RATE_FIELDS})

    def tightest(self, other: RateLimitConfig | None) -> RateLimitConfig:
        """Field-wise minimum of the tiers ``other`` sets explicitly: what applies when both hold."""
        if other is None:
            return self
        merged: dict[str, int | None] = {}
        for name in RATE_FIELDS:
            mine = getattr(self, name)
            theirs = getattr(other, name) if name in other.model_fields_set else None
            merged[name] = theirs if mine is None else mine if theirs is None else min(mine, theirs)
        return RateLimitConfig.model_validate(merged)

    def raises_above(self, ceiling: RateLimitConfig) -> list[str]:
        """Fields where this config allows more than ``ceiling`` (a lower layer may only tighten)."""
        above = []
        for name in RATE_FIELDS:
            mine, limit = getattr(self, name), getattr(ceiling, name)
            if limit is not None and (mine is None or mine > limit):
                above.append(name)
        return above


class ModelPrice(_Spec):
    """USD per 1K tokens, as in the original CostConfig; cached reads and cache writes optional."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(None, ge=0)
    cache_write: float | None = Field(None, ge=0)


class CostConfig(_Spec):
    """Prices that override genai-prices, and optional daily budgets across workflows."""

    model_costs: dict[str, ModelPrice] = Field(default_factory=dict)
    global_budget: float | None = Field(None, gt=0, description="USD per UTC day across all workflows")
    module_budgets: dict[str, float] = Field(default_factory=dict, description="USD per UTC day per module")

    @field_validator("module_budgets")
    @classmethod
    def _positive_module_budgets(cls, value: dict[str, float]) -> dict[str, float]:
        for module, budget in value.items():
            if budget <= 0:
                raise ValueError(f"module budget for {module!r} must be greater than 0")
        return value


class LimiterConfig(_Spec):
    """Where the rate limiter keeps its windows: the governance store (sql) or Redis."""

    backend: Literal["sql", "redis"] = "sql"
    url: str | None = Field(None, description="null: the governance store (sql) or redis://127.0.0.1:6379/0")
    namespace: str = Field("erp_agents", pattern=NAME_PATTERN)
    lease_seconds: float = Field(60.0, gt=0, description="a concurrency slot whose holder died frees after this")


class LedgerConfig(_Spec):
    """Where the cost ledger lives; null: the governance store."""

    url: str | None = None
    reservation_ttl_seconds: float = Field(900.0, gt=0)


class MonitorConfig(_Spec):
    enabled: bool = True
    metrics_prefix: str = "erp_agents"
    log_prompts: bool = False
    status_window_hours: int = Field(24, ge=1)


ProviderType = Literal["openai", "anthropic", "openai_compatible", "pydanticai", "custom"]


class ProviderConfig(_Spec):
    """One configured provider: its wire format, Airflow connection and limits."""

    type: ProviderType = "openai"
    conn_id: str = "openai_default"
    rate_limit_config: RateLimitConfig | None = None
    model_rate_limits: dict[str, RateLimitConfig] = Field(default_factory=dict)
    pool: str | None = None
    openai_api: Literal["chat", "responses"] = "chat"
    request_timeout: float = Field(120.0, gt=0)
    structured_output: Literal["native", "tool"] | None = None
    factory: str | None = None

    @model_validator(mode="after")
    def _custom_needs_factory(self) -> ProviderConfig:
        if self.type == "custom" and not self.factory:
            raise ValueError("a custom provider needs factory: the name of a registered model provider")
        if self.type != "custom" and self.factory is not None:
            raise ValueError(f"factory applies to a custom provider only, not to type {self.type!r}")
        return self

    @model_validator(mode="after")
    def _openai_api_on_openai_wire(self) -> ProviderConfig:
        # Only the OpenAI SDK models choose between chat and responses; "chat" (the default) is let
        # through so a dumped config loads again.
        if self.type not in ("openai", "openai_compatible") and self.openai_api != "chat":
            raise ValueError(
                f"openai_api applies to openai and openai_compatible providers only, not to type {self.type!r}"
            )
        return self

    def output_mode(self) -> Literal["native", "tool"]:
        """Native structured output where the wire format has it (OpenAI json_schema), else a tool."""
        return self.structured_output or ("native" if self.type in ("openai", "openai_compatible") else "tool")


def _default_providers() -> dict[str, ProviderConfig]:
    return {
        "openai": ProviderConfig(type="openai", conn_id="openai_default"),
        "anthropic": ProviderConfig(type="anthropic", conn_id="anthropic_default"),
    }


class EngineConfig(_Spec):
    """Engine-wide settings: providers, rate limits, prices, monitoring, defaults."""

    kind: Literal["EngineConfig"] = "EngineConfig"
    version: int = 1
    default_provider: str = "openai"
    providers: dict[str, ProviderConfig] = Field(default_factory=_default_providers)
    rate_limit_config: RateLimitConfig = Field(default_factory=RateLimitConfig)
    cost_config: CostConfig = Field(default_factory=CostConfig)
    monitor_config: MonitorConfig = Field(default_factory=MonitorConfig)
    default_retry_policy: RetryPolicy = Field(default_factory=RetryPolicy)
    max_tool_rounds: int = Field(8, ge=1, le=50)
    limiter: LimiterConfig = Field(default_factory=LimiterConfig)
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)

    @field_validator("version")
    @classmethod
    def _version_known(cls, value: int) -> int:
        return _check_version(value)

    @model_validator(mode="after")
    def _default_provider_exists(self) -> EngineConfig:
        if self.default_provider not in self.providers:
            known = ", ".join(sorted(self.providers)) or "none"
            raise ValueError(f"default_provider {self.default_provider!r} is not among providers: {known}")
        return self

    @model_validator(mode="after")
    def _model_limits_within_provider(self) -> EngineConfig:
        for name, provider in self.providers.items():
            ceiling = self.provider_limits(name)
            for model, limits in provider.model_rate_limits.items():
                above = [f for f in limits.explicit().raises_above(ceiling) if f in limits.model_fields_set]
                if above:
                    raise ValueError(
                        f"providers.{name}.model_rate_limits.{model}: {', '.join(above)} above the provider's limit"
                    )
        return self

    def provider_limits(self, provider_name: str) -> RateLimitConfig:
        """The provider's own limits, else the engine-wide ones."""
        return self.providers[provider_name].rate_limit_config or self.rate_limit_config

    def effective_rate_limits(
        self, provider_name: str, model: str, workflow_limits: RateLimitConfig | None = None
    ) -> list[tuple[str, RateLimitConfig]]:
        """Every limiter scope a call of ``model`` on ``provider_name`` must fit: the provider, and the model
        when it has limits of its own; a workflow's limits lower both."""
        scopes = [(f"provider:{provider_name}", self.provider_limits(provider_name).tightest(workflow_limits))]
        model_limits = self.providers[provider_name].model_rate_limits.get(bare_model_name(model))
        if model_limits is not None:
            scope = f"model:{provider_name}:{bare_model_name(model)}"
            scopes.append((scope, model_limits.explicit().tightest(workflow_limits)))
        return scopes

    def pools(self) -> set[str]:
        """The Airflow pools this config knows: each provider's pool and Airflow's default_pool."""
        return {"default_pool", *(p.pool for p in self.providers.values() if p.pool)}

    def provider_for(self, llm: LLMConfig) -> tuple[str, ProviderConfig]:
        """The provider an agent's model runs on: explicit, by ``provider:model`` prefix, or the default."""
        name = llm.provider
        if name is None and ":" in llm.model:
            prefix = llm.model.split(":", 1)[0]
            name = prefix if prefix in self.providers else None
        name = name or self.default_provider
        if name not in self.providers:
            known = ", ".join(sorted(self.providers))
            raise ValueError(f"unknown provider {name!r}; configured providers: {known}")
        return name, self.providers[name]


def bare_model_name(model: str) -> str:
    """A model name without its ``provider:`` prefix: how prices and per-model limits are keyed."""
    return model.split(":", 1)[-1]
