"""Find the specs in a folder: every workflow, the one engine config, and each file's own error."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from erp_agents.exceptions import SpecError, SpecProblem
from erp_agents.spec.loader import load_spec_file
from erp_agents.spec.models import EngineConfig, Workflow

SPEC_SUFFIXES = (".yaml", ".yml")
ENGINE_CONFIG_ENV = "ERP_AGENTS_ENGINE_CONFIG"


@dataclass
class SpecSet:
    """What a folder of specs holds. A broken file is kept as its error; it never hides the others."""

    workflows: dict[str, Workflow] = field(default_factory=dict)
    engine: EngineConfig = field(default_factory=EngineConfig)
    errors: dict[str, SpecError] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)


def spec_files(folder: str | Path) -> list[Path]:
    root = Path(folder)
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.suffix in SPEC_SUFFIXES and p.is_file())


def load_folder(folder: str | Path) -> SpecSet:
    """Load every spec under ``folder``; the engine config may also come from $ERP_AGENTS_ENGINE_CONFIG."""
    result = SpecSet()
    engines: list[tuple[str, EngineConfig]] = []
    if env_path := os.environ.get(ENGINE_CONFIG_ENV):
        try:
            engine = load_spec_file(env_path)
        except SpecError as exc:
            result.errors[env_path] = exc
        else:
            if isinstance(engine, EngineConfig):
                engines.append((env_path, engine))
    for path in spec_files(folder):
        try:
            spec = load_spec_file(path)
        except SpecError as exc:
            result.errors[str(path)] = exc
            continue
        if isinstance(spec, EngineConfig):
            engines.append((str(path), spec))
        elif spec.name in result.workflows:
            result.errors[str(path)] = SpecError(
                [SpecProblem(str(path), 1, 1, "name", f"workflow name {spec.name!r} is already used by another spec")]
            )
        else:
            result.workflows[spec.name] = spec
            result.sources[spec.name] = str(path)
    if engines:
        result.engine = engines[0][1]
        for path, _ in engines[1:]:
            result.errors[path] = SpecError(
                [SpecProblem(path, 1, 1, "kind", f"a second EngineConfig; the one in effect is {engines[0][0]}")]
            )
    return result
