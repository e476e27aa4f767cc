"""Spec loading: text -> validated Workflow or EngineConfig, or one SpecError naming file, line, field.

yaml_reader turns the text into data plus positions under hard limits; this module inlines prompt
files, validates with the pydantic models and the dependency graph, and maps every problem back to
its YAML line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from erp_agents.exceptions import SpecError, SpecProblem
from erp_agents.spec.graph import GraphError, build_graph
from erp_agents.spec.models import PROMPT_FILES_READ, EngineConfig, Workflow
from erp_agents.spec.prompts import (
    PROJECT_PROMPTS,
    PROMPT_PATH_ENV,
    check_prompt_name,
    prompt_search_path,
    read_prompt,
)
from erp_agents.spec.yaml_reader import LocatedDocument, SpecPath, cyclic_gc_paused, format_path, parse_yaml

__all__ = ["PROJECT_PROMPTS", "PROMPT_PATH_ENV", "LocatedDocument", "format_path", "load_spec_file",
           "load_spec_text", "parse_yaml", "prompt_search_path", "validate_document"]

KINDS: dict[str, type[BaseModel]] = {"Workflow": Workflow, "EngineConfig": EngineConfig}


def _data_path(data: Any, loc: tuple[Any, ...], missing: bool) -> SpecPath:
    """Drop pydantic's union tags from an error location, keeping only steps present in the data."""
    path: list[str | int] = []
    for step in loc:
        if isinstance(data, dict) and step in data:
            data = data[step]
            path.append(step)
        elif isinstance(data, list) and isinstance(step, int) and 0 <= step < len(data):
            data = data[step]
            path.append(step)
        elif missing and isinstance(data, dict) and step == loc[-1]:
            path.append(step)  # a missing required field: name it at its parent's line
    return tuple(path)


def _inline_prompt_files(doc: LocatedDocument) -> None:
    """``prompt_file`` becomes the agent's prompt_template (the name is kept for the record)."""
    agents = doc.data.get("agents") if doc.data.get("kind") == "Workflow" else None
    if not isinstance(agents, list):
        return
    search = prompt_search_path(doc.file)
    for i, agent in enumerate(agents):
        if not isinstance(agent, dict) or not isinstance(agent.get("prompt_file"), str):
            continue
        path = ("agents", i, "prompt_file")
        if "prompt_template" in agent:
            raise SpecError([doc.problem(path, "give prompt_template or prompt_file, not both")])
        try:
            check_prompt_name(agent["prompt_file"])
        except ValueError as exc:
            raise SpecError([doc.problem(path, str(exc))]) from None
        try:
            agent["prompt_template"] = read_prompt(agent["prompt_file"], search)
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecError([doc.problem(path, f"cannot read prompt file: {exc}")]) from None


def validate_document(doc: LocatedDocument) -> Workflow | EngineConfig:
    """Validate located data as a Workflow or EngineConfig; every problem names file, line, field."""
    data = doc.data
    if not isinstance(data, dict):
        raise SpecError([doc.problem((), f"a spec must be a mapping, got {type(data).__name__}")])
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:  # a list or mapping is not hashable
        raise SpecError([doc.problem(("kind",), f"kind must be one of {', '.join(KINDS)}; got {kind!r}")])
    _inline_prompt_files(doc)
    try:
        # The prompt files are inlined above (next to the spec): the agents keep both fields.
        model = KINDS[kind].model_validate(data, context={PROMPT_FILES_READ: True})
    except ValidationError as exc:
        raise SpecError(_problems_from(doc, exc)) from None
    if isinstance(model, Workflow):
        try:
            build_graph(model)
        except GraphError as exc:
            raise SpecError([doc.problem(p.path, p.message) for p in exc.problems]) from None
    return model  # type: ignore[return-value]


def _problems_from(doc: LocatedDocument, exc: ValidationError) -> list[SpecProblem]:
    """One problem per real mistake: errors of union branches and of containers whose items
    already failed are noise, so an error is dropped when another one lies strictly below it."""
    located: list[tuple[SpecPath, str]] = []
    for err in exc.errors(include_url=False):
        path = _data_path(doc.data, err["loc"], missing=err["type"] == "missing")
        message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        located.append((path, message))
    above = {p[:end] for p, _ in located for end in range(len(p))}  # linear: errors can be thousands
    kept = [(p, m) for p, m in located if p not in above]
    return list(dict.fromkeys(doc.problem(p, m) for p, m in kept))


def load_spec_text(text: str, file: str) -> Workflow | EngineConfig:
    with cyclic_gc_paused():
        return validate_document(parse_yaml(text, file))


def load_spec_file(path: str | Path) -> Workflow | EngineConfig:
    """Load one spec file; unreadable files are SpecErrors too."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([SpecProblem(file, 1, 1, "", f"cannot read spec: {exc}")]) from None
    return load_spec_text(text, file)
