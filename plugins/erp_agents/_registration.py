"""Explicit registration shared by tools and model providers: a project module's mapping plus entry points."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any


def registered(modules: tuple[str, ...], attribute: str, group: str) -> dict[str, Any]:
    """``attribute`` of each module that exists (a missing project module is fine, a broken one is not),
    then every entry point of ``group``: a mapping adds its items, anything else its own name."""
    found: dict[str, Any] = {}
    for path in modules:
        try:
            module = importlib.import_module(path)
        except ModuleNotFoundError as exc:
            if exc.name and path.startswith(exc.name):
                continue
            raise
        found.update(getattr(module, attribute, {}))
    for ep in entry_points(group=group):
        loaded = ep.load()
        found.update(loaded if isinstance(loaded, Mapping) else {ep.name: loaded})
    return found
