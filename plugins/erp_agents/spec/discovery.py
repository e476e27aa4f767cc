"""Find the specs in a folder: every workflow, the one engine config, and each file's own error."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from erp_agents.exceptions import SpecError, SpecProblem
from erp_agents.spec.loader import load_spec_file, parse_yaml
from erp_agents.spec.models import EngineConfig, Workflow

SPEC_SUFFIXES = (".yaml", ".yml")
ENGINE_CONFIG_ENV = "ERP_AGENTS_ENGINE_CONFIG"


@dataclass
class SpecSet:
    """What a folder of specs holds. A broken file is kept as its error; it never hides the others."""

    workflows: dict[str, Workflow] = field(default_factory=dict)
    engine: EngineConfig = field(default_factory=lambda: EngineConfig())
    errors: dict[str, SpecError] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)


def spec_files(folder: str | Path) -> list[Path]:
    root = Path(folder)
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.suffix in SPEC_SUFFIXES and p.is_file())


def spec_kind(path: Path) -> str | None:
    """The top-level ``kind`` of a spec that may be an EngineConfig, read by parsing (comments, quotes
    and flow style included); None when the file does not parse or never mentions EngineConfig."""
    try:
        text = path.read_text(encoding="utf-8")
        if "EngineConfig" not in text:
            return None
        data = parse_yaml(text, str(path)).data
    except (OSError, UnicodeDecodeError, SpecError):
        return None
    kind = data.get("kind") if isinstance(data, dict) else None
    return kind if isinstance(kind, str) else None


def engine_config_file(specs: list[Path]) -> Path | None:
    """The engine config in effect: $ERP_AGENTS_ENGINE_CONFIG when set, else the first spec of kind
    EngineConfig. Discovery and the SpecBundle both ask this function."""
    if env_path := os.environ.get(ENGINE_CONFIG_ENV):
        return Path(env_path)
    return next((path for path in specs if spec_kind(path) == "EngineConfig"), None)


def load_engine_config(path: str | Path) -> EngineConfig:
    """The EngineConfig in ``path``; any other kind of spec there is an error, not a silent default."""
    spec = load_spec_file(path)
    if not isinstance(spec, EngineConfig):
        where = "$" + ENGINE_CONFIG_ENV if str(path) == os.environ.get(ENGINE_CONFIG_ENV) else "the engine config"
        raise SpecError([SpecProblem(str(path), 1, 1, "kind", f"{where} names a {spec.kind}, not an EngineConfig")])
    return spec


def load_folder(folder: str | Path) -> SpecSet:
    """Load every spec under ``folder``; the engine config may also come from $ERP_AGENTS_ENGINE_CONFIG."""
    result = SpecSet()
    engines: list[tuple[str, EngineConfig]] = []
    if env_path := os.environ.get(ENGINE_CONFIG_ENV):
        try:
            engines.append((env_path, load_engine_config(env_path)))
        except SpecError as exc:
            result.errors[env_path] = exc
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
        for second, _ in engines[1:]:
            result.errors[second] = SpecError(
                [SpecProblem(second, 1, 1, "kind", f"a second EngineConfig; the one in effect is {engines[0][0]}")]
            )
    return result
