"""Where an agent's ``prompt_file`` is found and how it is read, for YAML specs and the Python API alike.

A prompt is sent to the model, so only files inside the prompt folders may become one: absolute
paths, ``..`` and symlinks leading out of their folder are refused.
"""

from __future__ import annotations

import os
from pathlib import Path

PROMPT_PATH_ENV = "ERP_AGENTS_PROMPT_PATH"
PROJECT_PROMPTS = Path(__file__).resolve().parents[3] / "include" / "erp" / "prompts"


def prompt_search_path(spec_file: str | None) -> list[Path]:
    """The folder of the spec (the current directory when there is none: the Python API), then
    $ERP_AGENTS_PROMPT_PATH, then include/erp/prompts."""
    extra = [Path(p) for p in os.environ.get(PROMPT_PATH_ENV, "").split(os.pathsep) if p]
    first = Path(spec_file).parent if spec_file is not None else Path.cwd()
    return [first, *extra, PROJECT_PROMPTS]


def check_prompt_name(name: str) -> None:
    """Raise ValueError unless ``name`` stays inside the folder it is looked up in."""
    path = Path(name)
    if path.is_absolute() or ".." in path.parts:
        raise ValueError("prompt_file must be a relative path without '..'")


def read_prompt(name: str, search: list[Path]) -> str:
    """The first ``name`` found along ``search``; OSError when none is, or when it leaves its folder."""
    for folder in search:
        candidate = folder / name
        if candidate.is_file():
            if not candidate.resolve().is_relative_to(folder.resolve()):
                raise OSError(f"{name!r} resolves outside its prompt folder {folder} (a symlink?): refused")
            return candidate.read_text(encoding="utf-8")
    raise OSError(f"{name!r} not found in " + ", ".join(str(f) for f in search))
