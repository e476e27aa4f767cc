"""SpecBundle: an Airflow DAG bundle in which every workflow spec is its own DAG file.

Airflow records import errors per DAG file and, when a file raises, marks every DAG of that file
stale. One loader module for a whole folder of specs therefore cannot show a broken spec as its
own import error without hiding the others. This bundle reads a folder of specs and keeps one
small generated module per spec in its own directory (refreshed by the DAG processor like any
bundle): a valid spec's module defines its DAG, a broken spec's module raises the SpecError, which
Airflow shows as that file's import error (file, line, field, message) while every other spec's
DAG stays. Configure it in ``[dag_processor] dag_bundle_config_list``::

    [{"name": "erp-specs", "classpath": "erp_agents.bundle.SpecBundle",
      "kwargs": {"specs_path": "/opt/airflow/dags/specs", "refresh_interval": 30}}]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.dag_processing.bundles.base import BaseDagBundle

from erp_agents.spec.discovery import engine_config_file, spec_files

MARKER = "# erp_agents.bundle: generated from"
_STUB = '''{marker} {spec}
# Rewritten from the spec on every bundle refresh: edit the spec, not this file. (airflow DAG)
from erp_agents.factory.spec_module import dag_from_spec

dag = dag_from_spec({spec!r}, engine_config={engine!r})
'''
_REFUSED = '''{marker} {spec}
# Rewritten from the spec on every bundle refresh: edit the spec, not this file. (airflow DAG)
from erp_agents.factory.spec_module import refuse_spec

refuse_spec({spec!r}, {field!r}, {message!r})
'''


def stub_name(spec: Path, root: Path) -> str:
    """``parallel/hr_review.yaml`` -> ``parallel__hr_review.py``: one flat, readable module per spec."""
    return "__".join(spec.relative_to(root).with_suffix("").parts) + ".py"


def _refused_name(spec: Path, root: Path) -> str:
    """A module name of its own for each of two specs that clash: ``a.yaml`` -> ``a__yaml.py``."""
    return "__".join(spec.relative_to(root).parts).replace(".", "__") + ".py"


def write_stubs(specs_path: Path, target: Path) -> set[str]:
    """Make ``target`` hold exactly one module per workflow spec; return the module names."""
    target.mkdir(parents=True, exist_ok=True)
    specs = spec_files(specs_path)
    engine = engine_config_file(specs)
    engine_text = str(engine.resolve()) if engine else None
    wanted: dict[str, str] = {}
    owners: dict[str, Path] = {}
    for spec in specs:
        if engine is not None and spec.resolve() == engine.resolve():
            continue
        name = stub_name(spec, specs_path)
        if name in owners:  # a.yaml and a.yml: both are reported, neither is silently dropped
            message = f"{spec.name} and {owners[name].name} give the same DAG module {name}; rename one"
            for clash in (owners[name], spec):
                wanted[_refused_name(clash, specs_path)] = _REFUSED.format(
                    marker=MARKER, spec=str(clash.resolve()), field="", message=message)
            wanted.pop(name, None)
            continue
        owners[name] = spec
        wanted[name] = _STUB.format(marker=MARKER, spec=str(spec.resolve()), engine=engine_text)
    for name, text in wanted.items():
        stub = target / name
        if not stub.exists() or stub.read_text() != text:
            tmp = stub.with_suffix(".tmp")
            tmp.write_text(text)
            tmp.replace(stub)  # atomic: the DAG processor never reads half a module
    for stale in target.glob("*.py"):
        if stale.name not in wanted and stale.read_text().startswith(MARKER):
            stale.unlink()
    return set(wanted)


class SpecBundle(BaseDagBundle):
    """A DAG bundle generated from a folder of workflow specs; one DAG file per spec."""

    supports_versioning = False

    def __init__(self, *, specs_path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.specs_path = Path(specs_path)

    @property
    def path(self) -> Path:
        return self.base_dir / "modules"

    def get_current_version(self) -> None:
        return None

    def initialize(self) -> None:
        self.refresh()
        super().initialize()

    def refresh(self) -> None:
        with self.lock():
            write_stubs(self.specs_path, self.path)
