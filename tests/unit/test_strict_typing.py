"""Strict mypy over the packages that cross process boundaries (``[tool.mypy]`` in pyproject.toml):
specs, costs, contracts, the XCom codec, the trigger, the operators and GovernedModel. A type error
there is a hand-off that breaks at run time in another process, so it fails the suite."""

from __future__ import annotations

import os

from mypy import api

from tests.conftest import ROOT


def test_strict_mypy_passes_on_the_typed_packages() -> None:
    cwd = os.getcwd()
    os.chdir(ROOT)  # mypy reads [tool.mypy] (strict, the file list) from the project's pyproject.toml
    try:
        report, errors, status = api.run(["--cache-dir", str(ROOT / ".mypy_cache")])
    finally:
        os.chdir(cwd)
    assert status == 0, f"strict mypy failed:\n{report}{errors}"
    assert "Success: no issues found" in report
