"""``erp_agents.__all__`` is sorted and is exactly what the package exports; the exception tree is one tree."""

from __future__ import annotations

import inspect

import erp_agents
from erp_agents import exceptions


def test_all_is_sorted_and_matches_the_exports():
    assert erp_agents.__all__ == sorted(erp_agents.__all__)
    public = {name for name, value in vars(erp_agents).items()
              if not name.startswith("_") and not inspect.ismodule(value) and name not in ("annotations", "TYPE_CHECKING", "Any")}
    assert public | {"build_dag"} == set(erp_agents.__all__)
    for name in erp_agents.__all__:
        assert getattr(erp_agents, name) is not None


def test_every_exception_is_in_one_tree_and_documented():
    classes = [v for v in vars(exceptions).values() if isinstance(v, type) and issubclass(v, Exception)]
    classes.append(exceptions.AgentRetryableError)
    for cls in classes:
        assert issubclass(cls, exceptions.ErpAgentsError), cls
        assert cls.__name__ in exceptions.__doc__, cls
    assert issubclass(exceptions.BudgetExceededError, exceptions.PermanentAgentError)
    assert issubclass(exceptions.RateLimitNeverFitsError, exceptions.PermanentAgentError)
    assert issubclass(exceptions.GovernanceStoreUnavailable, exceptions.TransientAgentError)


def test_importing_the_package_does_not_import_airflow():
    import subprocess
    import sys

    code = "import sys, erp_agents, erp_agents.exceptions; print('airflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
