"""Every exception erp_agents raises, in one tree.

    ErpAgentsError                          base of everything raised here
    ├── SpecError                           a spec file is invalid (file, line, column, field, message)
    ├── GraphError                          dependencies do not resolve or form a cycle (spec paths)
    ├── UnknownToolError                    a spec names a tool the registry does not hold
    ├── StackError                          the embedded deployment cannot start or stop (erp_agents.stack)
    ├── AirflowApiError                     Airflow's REST API refused or did not answer (erp_agents.stack)
    └── AgentRunError                       an agent's run failed; the message is masked
        ├── TransientAgentError             a retry may help (429, 5xx, timeout, dropped connection)
        │   ├── GovernanceStoreUnavailable  the ledger or limiter store cannot be reached (fail closed)
        │   ├── AgentTimeoutError           the agent's timeout ended it (calls, retries, waits, tools)
        │   └── AgentRetryableError         the same, raised to Airflow (also an AirflowException)
        └── PermanentAgentError             every attempt would fail the same way (400, 401, bad output)
            ├── UnknownPriceError           no price for a model: its calls must not count as free
            ├── BudgetExceededError         a cost limit or budget would be passed
            ├── RateLimitNeverFitsError     one request is larger than a rate-limit tier can ever admit
            └── ContractVersionError        stored trigger kwargs, an event or an XCom of another version

Whether a failure is retried is decided by its type alone: Airflow sees PermanentAgentError as
``AirflowFailException`` (no task retry) and TransientAgentError as ``AgentRetryableError``.
``AgentRetryableError`` subclasses Airflow's ``AirflowException``; it is built on first access so
that importing this module (and the spec models) does not import Airflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ErpAgentsError(Exception):
    """Base class of every erp_agents exception."""


@dataclass(frozen=True)
class SpecProblem:
    """One problem in one spec file, located as precisely as the YAML allows."""

    file: str
    line: int
    column: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.field or '<document>'}: {self.message}"


class SpecError(ErpAgentsError):
    """A spec is invalid; carries every problem found, each with file, line and field."""

    def __init__(self, problems: list[SpecProblem] | tuple[SpecProblem, ...]) -> None:
        if not problems:
            raise ValueError("SpecError needs at least one problem")
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @property
    def first(self) -> SpecProblem:
        return self.problems[0]


SpecPath = tuple[str | int, ...]


@dataclass(frozen=True)
class GraphProblem:
    """One dependency problem, with the spec path of the entry that caused it."""

    path: SpecPath
    message: str


class GraphError(ErpAgentsError):
    """The agents' dependencies do not resolve or form a cycle; the loader turns it into a SpecError."""

    def __init__(self, problems: list[GraphProblem] | tuple[GraphProblem, ...]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(p.message for p in self.problems))


class UnknownToolError(ErpAgentsError, LookupError):
    """A spec names a tool that is not registered, or names it ambiguously."""


class AgentRunError(ErpAgentsError):
    """An agent's run failed; the message carries the provider's own words, secrets masked."""


class TransientAgentError(AgentRunError):
    """A failure a later attempt may not see."""


class PermanentAgentError(AgentRunError):
    """A failure every attempt would see again."""


class GovernanceStoreUnavailable(TransientAgentError):
    """The ledger or limiter store cannot be reached; no request is sent without it."""


class AgentTimeoutError(TransientAgentError):
    """The agent's ``timeout`` ran out: a later try starts with the whole timeout again."""


class UnknownPriceError(PermanentAgentError):
    """No price for a model: refusing to count its calls as free."""


class BudgetExceededError(PermanentAgentError):
    """A request would take an agent, run, module or global budget past its limit."""


class RateLimitNeverFitsError(PermanentAgentError):
    """A single request needs more than a rate-limit tier allows in a whole window."""


class ContractVersionError(PermanentAgentError):
    """Data stored by another version of erp_agents (trigger kwargs, event, XCom) cannot be read."""

    def __init__(self, what: str, found: object, expected: int) -> None:
        super().__init__(
            f"{what} has schema_version {found!r}, this erp_agents reads version {expected}; "
            "clear the task so that it starts again from the current DAG"
        )


def _retryable_error_class() -> type[TransientAgentError]:
    from airflow.sdk.exceptions import AirflowException

    class AgentRetryableError(TransientAgentError, AirflowException):
        """A transient agent failure raised to Airflow, which retries the task."""

    AgentRetryableError.__module__ = __name__
    return AgentRetryableError


def __getattr__(name: str) -> Any:
    if name == "AgentRetryableError":
        cls = _retryable_error_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Every AgentRunError subclass by name: how an error event names its exception across processes.
def agent_error_classes() -> dict[str, type[AgentRunError]]:
    found: dict[str, type[AgentRunError]] = {}
    pending: list[type[AgentRunError]] = [AgentRunError]
    while pending:
        cls = pending.pop()
        found[cls.__name__] = cls
        pending.extend(cls.__subclasses__())
    return found


def is_permanent(error_type: str) -> bool:
    """Whether an error event's type is one retries cannot help (unknown names count as transient)."""
    return issubclass(agent_error_classes().get(error_type, TransientAgentError), PermanentAgentError)
