"""Exceptions raised by erp_agents.

    ErpAgentsError                      base of everything raised here
    ├── SpecError                       a spec file is invalid (file, line, column, field, message)
    └── AgentRunError                   an agent's model call failed
        ├── TransientAgentError         a retry may help (429, 5xx, timeout, dropped connection)
        └── PermanentAgentError         a retry cannot help (400, 401, bad output, unknown price)

Runtime failures reach Airflow as its own types: the operator turns PermanentAgentError into
``AirflowFailException`` (no task retry) and TransientAgentError into ``AirflowException``.
"""

from __future__ import annotations

from dataclasses import dataclass


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


class AgentRunError(ErpAgentsError):
    """An agent's run failed; the message carries the provider's own words."""


class TransientAgentError(AgentRunError):
    """A failure a later attempt may not see."""


class PermanentAgentError(AgentRunError):
    """A failure every attempt would see again."""
