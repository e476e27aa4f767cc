#!/usr/bin/env python
"""DagBag parse benchmark: our YAML factory vs the same DAGs as plain Python vs dag-factory.

Run from the repo root with the project's virtualenv::

    .venv/bin/python bench/parse.py [--repeats 5] [--shapes A,B] [--keep] [--no-profile]

Two shapes, each generated three ways in a temporary folder:

* ``A``: one workflow of 500 agents;  ``B``: 100 workflows of 20 agents.
* ``ours``: a copy of ``dags/erp_agents_dags.py`` next to ``specs/*.yaml`` in the erp-agents format;
* ``hand``: one plain-Python DAG file per workflow that builds the very same DAG (``airflow.sdk.DAG``,
  ``TaskGroup``, ``LLMAgentOperator``, ``WorkflowSummaryOperator`` with literal arguments), written
  out from the project's own plan stage (``erp_agents.factory.plan.plan_workflow``);
* ``dagfactory``: one loader file calling ``dagfactory.load_yaml_dags`` over YAML in dag-factory's
  format whose tasks are the same ``LLMAgentOperator`` / ``WorkflowSummaryOperator`` with the same
  payloads and settings. It runs under its own virtualenv, ``bench/.venvs/dagfactory``, created on
  first use (see bench/parse_README.md).

Each measurement is a fresh ``python bench/parse.py --child FOLDER`` process that imports Airflow and
the erp-agents operators, then times ``DagBag(dag_folder=FOLDER)``; the parent also times the whole
process. Every variant is parsed once untimed first (it writes the DAG files' bytecode caches, as a
DAG processor's first parse would), then ``--repeats`` times in interleaved rounds; medians are
reported. Every parse must give the expected DAGs and tasks and no import error, and every DAG must
have the same tasks, edges, payloads and task settings as ours (``hand`` also the same DAG settings),
otherwise the run stops with exit status 1. A missed target is printed but is not an error.
When ours misses the 1.5x target, a cProfile of our parse lists the hotspots in plugins/erp_agents.

Results: a table on stdout and bench/results/parse.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import pprint
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "parse.json"
DF_VENV = ROOT / "bench" / ".venvs" / "dagfactory"
# Where the measured erp-agents code (plugins/, dags/, include/) lives: this checkout, or with --ref
# a copy of those folders as committed at that ref.
CODE_ROOT = ROOT
DAGFACTORY_REQUIREMENT = "dag-factory==1.1.0"
RESULT_PREFIX = "PARSE_BENCH_RESULT "
HAND_TARGET = 1.5
MODULES = ("Finance", "HR", "Inventory", "Compliance")
TOOLS = {
    "Finance": "finance.get_ledger_balance",
    "HR": "hr.get_payroll_summary",
    "Inventory": "inventory.get_stock_levels",
    "Compliance": "compliance.lookup_policy",
}
VARIANTS = ("ours", "hand", "dagfactory")
AGENT_OPERATOR = "erp_agents.operators.agent.LLMAgentOperator"
SUMMARY_OPERATOR = "erp_agents.operators.summary.WorkflowSummaryOperator"
# DAG settings dag-factory sets its own way: it adds the "dagfactory" tag and appends the YAML to doc_md.
DAGFACTORY_OWN_DAG_FIELDS = ("tags", "doc_md")


class BenchError(RuntimeError):
    """A parse failed, gave the wrong DAGs, or a variant is not the same DAG as ours."""


@dataclass(frozen=True)
class Shape:
    key: str
    workflows: int
    agents: int
    width: int  # agents per dependency layer

    @property
    def label(self) -> str:
        return f"{self.key}: {self.workflows} x {self.agents} agents"

    @property
    def expected_tasks(self) -> int:
        return self.workflows * (self.agents + 1)  # + workflow_summary


SHAPES = {"A": Shape("A", 1, 500, 10), "B": Shape("B", 100, 20, 4)}


# --------------------------------------------------------------------------------------------------
# Child: one measured parse


def dag_fingerprint(dag: Any) -> dict[str, Any]:
    """What must match between variants: DAG settings, and a digest of every task's settings and edges."""
    tasks = {}
    for task in dag.tasks:
        tasks[task.task_id] = {
            "class": type(task).__name__,
            "group": task.task_group.group_id if task.task_group else None,
            "upstream": sorted(task.upstream_task_ids),
            "payload": getattr(task, "payload", None),
            "priority_weight": task.priority_weight,
            "weight_rule": str(task.weight_rule),
            "retries": task.retries,
            "retry_delay": task.retry_delay.total_seconds() if task.retry_delay else None,
            "retry_exponential_backoff": task.retry_exponential_backoff,
            "max_retry_delay": task.max_retry_delay.total_seconds() if task.max_retry_delay else None,
            "execution_timeout": task.execution_timeout.total_seconds() if task.execution_timeout else None,
            "trigger_rule": str(task.trigger_rule),
            "doc_md": task.doc_md,
        }
    digest = hashlib.sha256(json.dumps(tasks, sort_keys=True, default=str).encode()).hexdigest()
    return {
        "tasks_sha256": digest,
        "task_count": len(tasks),
        "edges": sum(len(t["upstream"]) for t in tasks.values()),
        "dag": {
            "description": dag.description,
            "schedule": repr(dag.timetable),
            "start_date": dag.start_date.isoformat() if dag.start_date else None,
            "catchup": dag.catchup,
            "tags": sorted(dag.tags),
            "max_active_tasks": dag.max_active_tasks,
            "max_active_runs": dag.max_active_runs,
            "dagrun_timeout": dag.dagrun_timeout.total_seconds() if dag.dagrun_timeout else None,
            "params": json.dumps(dag.params.dump(), sort_keys=True, default=str),
            "doc_md": hashlib.sha256((dag.doc_md or "").encode()).hexdigest(),
        },
    }


def run_child(folder: str, profile_out: str | None) -> None:
    import airflow
    import airflow.sdk  # noqa: F401
    import erp_agents.operators.agent  # noqa: F401
    import erp_agents.operators.summary  # noqa: F401
    from airflow.dag_processing.dagbag import DagBag

    profiler = None
    if profile_out:
        import cProfile

        profiler = cProfile.Profile()
    start, cpu_start = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    bag = DagBag(dag_folder=folder)
    if profiler:
        profiler.disable()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    if profiler:
        profiler.dump_stats(profile_out)
    dagfactory = sys.modules.get("dagfactory")
    dagfactory_version = getattr(dagfactory, "__version__", None)
    result = {
        "dagbag_s": elapsed,
        "dagbag_cpu_s": cpu,
        "dags": len(bag.dags),
        "tasks": sum(len(d.tasks) for d in bag.dags.values()),
        "import_errors": {str(k): str(v)[-3000:] for k, v in bag.import_errors.items()},
        "fingerprints": {dag_id: dag_fingerprint(dag) for dag_id, dag in bag.dags.items()},
        "airflow_version": airflow.__version__,
        "dagfactory_version": dagfactory_version,
        "python": sys.executable,
    }
    print(RESULT_PREFIX + json.dumps(result), flush=True)


# --------------------------------------------------------------------------------------------------
# Workflow specs (erp-agents format)


def agent_name(i: int) -> str:
    return f"agent_{i:03d}"


def agent_spec(i: int, width: int) -> dict[str, Any]:
    module = MODULES[i % len(MODULES)]
    layer, pos = divmod(i, width)
    deps: list[str] = []
    if layer:
        first = (layer - 1) * width
        deps = list(dict.fromkeys([agent_name(first + pos), agent_name(first + (pos + 1) % width)]))
    lines = [
        f"You are the {module} agent number {i} of Northwind Components Ltd's month-end close.",
        "For period {{ params.period }}, check the figures you are responsible for and list the three",
        "most material findings, each with the amount involved and the account or record it concerns.",
    ]
    for dep in deps:
        lines += ["", f"Findings of {dep}:", f"{{{{ agents.{dep}.output }}}}"]
    spec: dict[str, Any] = {
        "name": agent_name(i),
        "module": module,
        "description": f"{module} check {i} of the month-end close",
        "llm_config": {"model": "gpt-4o-mini", "temperature": round(0.1 * (i % 5), 1), "max_tokens": 400 + 100 * (i % 4)},
        "prompt_template": "\n".join(lines) + "\n",
        "tools": [TOOLS[module]],
        "priority": 1 + (7 * i) % 10,
        "critical": i % 3 != 0,
        "timeout": 300 + 60 * (i % 3),
    }
    if deps:
        spec["dependencies"] = deps
    if i % 10 == 5:
        spec["retry_policy"] = {"max_retries": 4, "strategy": "linear_backoff", "base_delay": 2, "max_delay": 30}
    elif i % 7 == 3:
        spec["max_retries"] = 1
    return spec


def workflow_spec(shape: Shape, w: int) -> dict[str, Any]:
    return {
        "kind": "Workflow",
        "version": 1,
        "name": f"parse_{shape.key.lower()}_{w:03d}",
        "description": f"Month-end close benchmark workflow {w}: {shape.agents} agents over {len(MODULES)} modules",
        "module": "Finance",
        "schedule": "0 2 * * *",
        "max_parallel_agents": 8,
        "cost_budget": 5.0,
        "timeout": 5400,
        "allow_partial_completion": True,
        "tags": ["bench", "month-end"],
        "params": {"period": "2026-10"},
        "retry_policy": {"max_retries": 2, "strategy": "exponential_backoff", "base_delay": 10, "max_delay": 120},
        "agents": [agent_spec(i, shape.width) for i in range(shape.agents)],
    }


def dump_yaml(data: Any) -> str:
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return yaml.dump(data, Dumper=Dumper, sort_keys=False, width=110, allow_unicode=True)


# --------------------------------------------------------------------------------------------------
# The three DAG folders


def write_ours(folder: Path, shape: Shape) -> list[Path]:
    specs = folder / "specs"
    specs.mkdir(parents=True)
    shutil.copy(CODE_ROOT / "dags" / "erp_agents_dags.py", folder / "erp_agents_dags.py")
    paths = []
    for w in range(shape.workflows):
        spec = workflow_spec(shape, w)
        path = specs / f"{spec['name']}.yaml"
        path.write_text(dump_yaml(spec), encoding="utf-8")
        paths.append(path)
    return paths


def literal(value: Any, column: int) -> str:
    """A Python literal for ``value`` whose first character goes at ``column``."""
    text = pprint.pformat(value, width=max(40, 110 - column), sort_dicts=False)
    return text.replace("\n", "\n" + " " * column)


def seconds(value: float | None) -> str:
    return "None" if value is None else f"timedelta(seconds={value!r})"


def hand_written_dag(plan: Any) -> str:
    """One plain-Python DAG file equal to what render_dag builds from ``plan``."""
    var = {t.task_id: f"{t.group_id}_{t.task_id.split('.', 1)[1]}" for t in plan.tasks}
    out = [
        f'"""{plan.dag_id}: {len(plan.tasks)} LLM agents in {len(plan.groups)} module task groups, as a plain Airflow DAG."""',
        "",
        "from datetime import datetime, timedelta, timezone",
        "",
        "from airflow.sdk import DAG, TaskGroup",
        "",
        "from erp_agents.operators.agent import LLMAgentOperator",
        "from erp_agents.operators.summary import WorkflowSummaryOperator",
        "",
        "with DAG(",
        f"    dag_id={plan.dag_id!r},",
        f"    description={plan.description[:200]!r},",
        f"    schedule={plan.schedule!r},",
        "    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),",
        "    catchup=False,",
        f"    tags={set(plan.tags)!r},",
        f"    max_active_tasks={plan.max_active_tasks!r},",
        f"    max_active_runs={1 if plan.schedule else 16},",
        f"    dagrun_timeout={seconds(plan.dagrun_timeout_s)},",
        f"    params={literal(plan.params, 11)},",
        f"    doc_md={literal(plan.doc_md, 11)},",
        ") as dag:",
    ]
    for group in plan.groups:
        out.append(f"    {group} = TaskGroup(group_id={group!r}, prefix_group_id=True)")
    for t in plan.tasks:
        out += [
            "",
            f"    {var[t.task_id]} = LLMAgentOperator(",
            f"        task_id={t.task_id.split('.', 1)[1]!r},",
            f"        task_group={t.group_id},",
            f"        invocation={literal(t.invocation.to_json(), 16)},",
            f"        pool={t.pool!r},",
            f"        trigger_rule={t.trigger_rule!r},",
            f"        priority_weight={t.priority_weight!r},",
            '        weight_rule="absolute",',
            f"        retries={t.retries!r},",
            f"        retry_delay={seconds(t.retry_delay_s)},",
            f"        retry_exponential_backoff={t.retry_exponential_backoff!r},",
            f"        max_retry_delay={seconds(t.max_retry_delay_s)},",
            f"        execution_timeout={seconds(t.execution_timeout_s)},",
            f"        doc_md={(t.agent.description or None)!r},",
            "    )",
        ]
    out.append("")
    for t in plan.tasks:
        if t.upstream_task_ids:
            ups = ", ".join(var[u] for u in t.upstream_task_ids)
            out.append(f"    [{ups}] >> {var[t.task_id]}")
    out += [
        "",
        "    workflow_summary = WorkflowSummaryOperator(",
        '        task_id="workflow_summary",',
        f"        summary={literal(plan.summary.model_dump(mode='json'), 16)},",
        "    )",
        "    [",
    ]
    out += [f"        {var[t.task_id]}," for t in plan.tasks]
    out += ["    ] >> workflow_summary", ""]
    return "\n".join(out)


def timedelta_yaml(value: float) -> dict[str, Any]:
    return {"__type__": "datetime.timedelta", "seconds": value}


def dagfactory_dag(plan: Any) -> dict[str, Any]:
    """The same DAG in dag-factory's YAML format: tasks are our operators with the same arguments."""
    tasks: dict[str, Any] = {}
    for t in plan.tasks:
        conf: dict[str, Any] = {
            "operator": AGENT_OPERATOR,
            "task_group_name": t.group_id,
        }
        if t.upstream_task_ids:
            conf["dependencies"] = [u.split(".", 1)[1] for u in t.upstream_task_ids]
        conf.update(
            {
                "invocation": t.invocation.to_json(),
                "pool": t.pool,
                "trigger_rule": t.trigger_rule,
                "priority_weight": t.priority_weight,
                "weight_rule": "absolute",
                "retries": t.retries,
                "retry_delay": timedelta_yaml(t.retry_delay_s),
                "retry_exponential_backoff": t.retry_exponential_backoff,
                "max_retry_delay": timedelta_yaml(t.max_retry_delay_s),
                "execution_timeout": timedelta_yaml(t.execution_timeout_s),
                "doc_md": t.agent.description or None,
            }
        )
        tasks[t.task_id.split(".", 1)[1]] = conf
    tasks["workflow_summary"] = {
        "operator": SUMMARY_OPERATOR,
        "summary": plan.summary.model_dump(mode="json"),
        "dependencies": [t.task_id.split(".", 1)[1] for t in plan.tasks],
    }
    dag: dict[str, Any] = {
        "description": plan.description[:200],
        "schedule": plan.schedule,
        "start_date": "2026-01-01",
        "catchup": False,
        "tags": list(plan.tags),
        "max_active_tasks": plan.max_active_tasks,
        "max_active_runs": 1 if plan.schedule else 16,
    }
    if plan.dagrun_timeout_s:
        dag["dagrun_timeout"] = timedelta_yaml(plan.dagrun_timeout_s)
    dag.update(
        {
            "params": plan.params,
            "doc_md": plan.doc_md,
            "task_groups": {g: {} for g in plan.groups},
            "tasks": tasks,
        }
    )
    return {plan.dag_id: dag}


DAGFACTORY_LOADER = '''"""Airflow DAGs built by dag-factory from the YAML files in specs/."""

from pathlib import Path

from dagfactory import load_yaml_dags

load_yaml_dags(globals_dict=globals(), dags_folder=str(Path(__file__).with_name("specs")))
'''


def write_variants(base: Path, shape: Shape) -> dict[str, Path]:
    from erp_agents.exceptions import SpecError
    from erp_agents.factory.plan import plan_workflow
    from erp_agents.spec.loader import load_spec_file
    from erp_agents.spec.models import EngineConfig

    folders = {v: (base / shape.key / v) for v in VARIANTS}
    spec_paths = write_ours(folders["ours"], shape)
    folders["hand"].mkdir(parents=True)
    (folders["dagfactory"] / "specs").mkdir(parents=True)
    (folders["dagfactory"] / "dagfactory_dags.py").write_text(DAGFACTORY_LOADER, encoding="utf-8")
    engine = EngineConfig()
    for path in spec_paths:
        try:
            workflow = load_spec_file(path)
        except SpecError as exc:
            raise BenchError(f"{shape.label}: erp-agents refuses the generated spec:\n{exc}") from None
        # the same source string the loader passes, so doc_md is the same too
        plan = plan_workflow(workflow, engine, str(path))
        (folders["hand"] / f"{plan.dag_id}.py").write_text(hand_written_dag(plan), encoding="utf-8")
        (folders["dagfactory"] / "specs" / f"{plan.dag_id}.yaml").write_text(
            dump_yaml(dagfactory_dag(plan)), encoding="utf-8"
        )
    return folders


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


# --------------------------------------------------------------------------------------------------
# dag-factory's virtualenv


def ensure_dagfactory_venv() -> Path:
    """bench/.venvs/dagfactory: dag-factory on top of the project venv's packages, which it never changes."""
    python = DF_VENV / "bin" / "python"
    if not python.exists():
        print(f"Creating {DF_VENV.relative_to(ROOT)} ...", flush=True)
        DF_VENV.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(DF_VENV)], check=True)
    # --system-site-packages exposes the base interpreter's packages, not the project venv's: a .pth adds
    # those after the bench venv's own site-packages, so Airflow and erp-agents' dependencies are shared.
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    project_site = sysconfig.get_paths()["purelib"]
    pth = site / "_erp_agents_project_venv.pth"
    line = f"import site; site.addsitedir({project_site!r})\n"
    if not pth.exists() or pth.read_text() != line:
        pth.write_text(line)
    check = subprocess.run([str(python), "-c", "import dagfactory, airflow"], capture_output=True, text=True)
    if check.returncode != 0:
        print(f"Installing {DAGFACTORY_REQUIREMENT} into {DF_VENV.relative_to(ROOT)} ...", flush=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", DAGFACTORY_REQUIREMENT], check=True)
    return python


# --------------------------------------------------------------------------------------------------
# Measuring


def child_env(folder: Path, airflow_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ERP_AGENTS_", "PYTHON"))}
    env.update(
        {
            "PYTHONPATH": f"{CODE_ROOT}{os.pathsep}{CODE_ROOT / 'plugins'}",
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(folder),
            # a parse slower than Airflow's default 30 s is measured rather than reported as an import error
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "600",
            "AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY": "False",
            "DO_NOT_TRACK": "True",
            "SCARF_NO_ANALYTICS": "True",
        }
    )
    return env


def measure(python: Path, folder: Path, airflow_home: Path, profile_out: Path | None = None) -> dict[str, Any]:
    cmd = [str(python), str(Path(__file__).resolve()), "--child", str(folder)]
    if profile_out:
        cmd += ["--profile-out", str(profile_out)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=child_env(folder, airflow_home), capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - start
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        raise BenchError(
            f"parse of {folder} with {python} failed (exit {proc.returncode}):\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    result = json.loads(lines[-1][len(RESULT_PREFIX):])
    result["wall_s"] = wall
    return result


def check_parse(variant: str, shape: Shape, result: dict[str, Any]) -> None:
    if result["import_errors"]:
        errors = "\n".join(f"{k}:\n{v}" for k, v in result["import_errors"].items())
        raise BenchError(f"{shape.label}, {variant}: {len(result['import_errors'])} import error(s):\n{errors}")
    if result["dags"] != shape.workflows or result["tasks"] != shape.expected_tasks:
        raise BenchError(
            f"{shape.label}, {variant}: expected {shape.workflows} DAGs and {shape.expected_tasks} tasks, "
            f"got {result['dags']} DAGs and {result['tasks']} tasks"
        )


def check_same_dags(shape: Shape, results: dict[str, dict[str, Any]]) -> None:
    ours = results["ours"]["fingerprints"]
    for variant in ("hand", "dagfactory"):
        other = results[variant]["fingerprints"]
        if set(other) != set(ours):
            raise BenchError(f"{shape.label}, {variant}: DAG ids differ from ours: {sorted(set(other) ^ set(ours))[:5]}")
        for dag_id, fp in ours.items():
            theirs = other[dag_id]
            if theirs["tasks_sha256"] != fp["tasks_sha256"]:
                raise BenchError(
                    f"{shape.label}, {variant}: DAG {dag_id} does not have the same tasks as ours "
                    f"({theirs['task_count']} tasks / {theirs['edges']} edges vs {fp['task_count']} / {fp['edges']})"
                )
            skip = DAGFACTORY_OWN_DAG_FIELDS if variant == "dagfactory" else ()
            diff = {k for k in fp["dag"] if k not in skip and fp["dag"][k] != theirs["dag"][k]}
            if diff:
                detail = {k: (fp["dag"][k], theirs["dag"][k]) for k in sorted(diff)}
                raise BenchError(f"{shape.label}, {variant}: DAG {dag_id} settings differ from ours: {detail}")


def git(*args: str) -> str:
    """Read-only git in this checkout; "" when git fails."""
    proc = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def source_state(ref: str | None) -> dict[str, Any]:
    """The commit measured and, for the working tree, the files changed on top of it."""
    if ref:
        return {"ref": ref, "commit": git("rev-parse", f"{ref}^{{commit}}") or None}
    changed = [line[3:] for line in git("status", "--porcelain", "--", "plugins", "dags", "include").splitlines()]
    return {"working_tree": True, "commit": git("rev-parse", "HEAD") or None, "uncommitted_changes": changed}


def export_ref(ref: str, dest: Path) -> Path:
    """plugins/, dags/ and include/ as committed at ``ref`` into ``dest`` (git archive: read-only)."""
    import io
    import tarfile

    proc = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref, "plugins", "dags", "include"],
                          capture_output=True)
    if proc.returncode != 0:
        raise BenchError(f"git archive {ref} failed: {proc.stderr.decode(errors='replace').strip()}")
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def median(values: list[float]) -> float:
    return statistics.median(values)


def erp_hotspots(profile: Path, top: int = 10) -> dict[str, Any]:
    """Top functions in plugins/erp_agents by cumulative time, with file:line and where outside
    plugins/erp_agents their time goes (their costliest direct callees)."""
    import pstats

    stats = pstats.Stats(str(profile)).stats  # type: ignore[attr-defined]
    plugin_dir = str(CODE_ROOT / "plugins" / "erp_agents")
    callees: dict[tuple[str, int, str], list[tuple[float, tuple[str, int, str]]]] = {}
    for func, (_cc, _nc, _tt, _ct, callers) in stats.items():
        for caller, edge in callers.items():
            callees.setdefault(caller, []).append((edge[3], func))

    def where(func: tuple[str, int, str]) -> str:
        file, line, name = func
        if file.startswith(str(CODE_ROOT)):
            file = os.path.relpath(file, CODE_ROOT)
        elif "site-packages/" in file:
            file = file.split("site-packages/", 1)[1]
        return f"{file}:{line} {name}"

    rows = []
    for func, (_cc, ncalls, tottime, cumtime, _callers) in stats.items():
        if not func[0].startswith(plugin_dir):
            continue
        outside = sorted(
            (c for c in callees.get(func, []) if not c[1][0].startswith(plugin_dir) and c[0] >= 0.001), reverse=True
        )
        rows.append(
            {
                "where": where(func),
                "calls": ncalls,
                "own_s": round(tottime, 4),
                "cumulative_s": round(cumtime, 4),
                "top_callees_outside": [{"where": where(f), "cumulative_s": round(t, 4)} for t, f in outside[:2]],
            }
        )
    total = max((v[3] for v in stats.values()), default=0.0)
    return {
        "profiled_total_s": round(total, 4),
        "by_cumulative": sorted(rows, key=lambda r: -r["cumulative_s"])[:top],
        "by_own_time": sorted(rows, key=lambda r: -r["own_s"])[:top],
    }


METRICS = (
    ("dagbag_s", "DagBag(dag_folder) wall time, median"),
    ("dagbag_cpu_s", "DagBag(dag_folder) CPU time of the parsing process, median"),
    ("wall_s", "Whole subprocess wall time (interpreter start, imports, parse), median"),
)


def print_table(rows: list[dict[str, Any]]) -> None:
    headers = ["shape", "ours (s)", "hand-written (s)", "dag-factory (s)", "ours/hand", "ours/dag-factory",
               f"<= {HAND_TARGET}x hand", "< dag-factory"]
    for key, title in METRICS:
        judged = key == "dagbag_s"  # the other tables are for reading alongside it
        table = [headers if judged else headers[:6]]
        for r in rows:
            m = r["median"][key]
            ratio_hand = m["ours"] / m["hand"]
            ratio_df = m["ours"] / m["dagfactory"]
            row = [r["shape"], f"{m['ours']:.3f}", f"{m['hand']:.3f}", f"{m['dagfactory']:.3f}",
                   f"{ratio_hand:.2f}x", f"{ratio_df:.2f}x"]
            if judged:
                row += ["met" if ratio_hand <= HAND_TARGET else "MISSED", "met" if ratio_df < 1 else "MISSED"]
            table.append(row)
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        print(f"\n{title}{' (the targets are judged on this one)' if judged else ''}:")
        for i, row in enumerate(table):
            print("  " + "  ".join(cell.ljust(widths[j]) for j, cell in enumerate(row)))
            if i == 0:
                print("  " + "  ".join("-" * w for w in widths))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", metavar="FOLDER", help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--shapes", default="A,B", help="comma-separated: A (1 x 500 agents), B (100 x 20 agents)")
    parser.add_argument("--keep", action="store_true", help="keep the generated DAG folders")
    parser.add_argument("--no-profile", action="store_true", help="no cProfile run when ours misses the target")
    parser.add_argument("--ref", help="measure erp-agents as committed at this git ref instead of the working tree")
    args = parser.parse_args()
    if args.child:
        run_child(args.child, args.profile_out)
        return 0

    global CODE_ROOT
    shapes = [SHAPES[k.strip().upper()] for k in args.shapes.split(",") if k.strip()]
    pythons = {"ours": Path(sys.executable), "hand": Path(sys.executable), "dagfactory": ensure_dagfactory_venv()}
    base = Path(tempfile.mkdtemp(prefix="erp-parse-bench-")).resolve()
    airflow_home = base / "airflow_home"
    airflow_home.mkdir()
    try:
        if args.ref:
            CODE_ROOT = export_ref(args.ref, base / "code")
    except BenchError as exc:
        shutil.rmtree(base, ignore_errors=True)
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    for path in (str(CODE_ROOT / "plugins"), str(CODE_ROOT)):
        if path not in sys.path:
            sys.path.insert(0, path)
    report: dict[str, Any] = {
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "repeats": args.repeats,
        "hand_target": HAND_TARGET,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_average_at_start": list(os.getloadavg())},
        "source": source_state(args.ref),
        "shapes": [],
    }
    rows = []
    try:
        for shape in shapes:
            print(f"\n{shape.label}: generating ...", flush=True)
            folders = write_variants(base, shape)
            sizes = {v: folder_bytes(f) for v, f in folders.items()}
            print("  source bytes: " + ", ".join(f"{v} {sizes[v]:,}" for v in VARIANTS), flush=True)
            warm = {}
            for v in VARIANTS:
                warm[v] = measure(pythons[v], folders[v], airflow_home)
                check_parse(v, shape, warm[v])
                print(f"  warm-up {v:10s} dagbag {warm[v]['dagbag_s']:.3f} s (cpu {warm[v]['dagbag_cpu_s']:.3f} s)"
                      f"  process {warm[v]['wall_s']:.3f} s", flush=True)
            check_same_dags(shape, warm)
            samples = {v: {key: [] for key, _ in METRICS} for v in VARIANTS}
            for r in range(args.repeats):
                for v in VARIANTS:
                    res = measure(pythons[v], folders[v], airflow_home)
                    check_parse(v, shape, res)
                    for key, _ in METRICS:
                        samples[v][key].append(res[key])
                print(f"  round {r + 1}/{args.repeats}: " + ", ".join(
                    f"{v} {samples[v]['dagbag_s'][-1]:.3f} s" for v in VARIANTS), flush=True)
            med = {k: {v: median(samples[v][k]) for v in VARIANTS} for k, _ in METRICS}
            ratio_hand = med["dagbag_s"]["ours"] / med["dagbag_s"]["hand"]
            ratio_df = med["dagbag_s"]["ours"] / med["dagbag_s"]["dagfactory"]
            entry: dict[str, Any] = {
                "shape": shape.label,
                "key": shape.key,
                "workflows": shape.workflows,
                "agents_per_workflow": shape.agents,
                "dags": shape.workflows,
                "tasks": shape.expected_tasks,
                "edges": sum(fp["edges"] for fp in warm["ours"]["fingerprints"].values()),
                "source_bytes": sizes,
                "samples": samples,
                "median": med,
                "ratios": {
                    "ours_over_hand": ratio_hand,
                    "ours_over_dagfactory": ratio_df,
                    "ours_over_hand_cpu": med["dagbag_cpu_s"]["ours"] / med["dagbag_cpu_s"]["hand"],
                    "ours_over_dagfactory_cpu": med["dagbag_cpu_s"]["ours"] / med["dagbag_cpu_s"]["dagfactory"],
                    "ours_over_hand_process": med["wall_s"]["ours"] / med["wall_s"]["hand"],
                    "ours_over_dagfactory_process": med["wall_s"]["ours"] / med["wall_s"]["dagfactory"],
                },
                "targets": {"hand": ratio_hand <= HAND_TARGET, "dagfactory": ratio_df < 1.0},
            }
            if not entry["targets"]["hand"] and not args.no_profile:
                profile = base / f"ours_{shape.key}.prof"
                measure(pythons["ours"], folders["ours"], airflow_home, profile_out=profile)
                entry["hotspots"] = erp_hotspots(profile)
            report["airflow_version"] = warm["ours"]["airflow_version"]
            report["dagfactory_version"] = warm["dagfactory"]["dagfactory_version"]
            report["shapes"].append(entry)
            rows.append(entry)
            if args.keep:
                print(f"  kept: {base / shape.key}", flush=True)
    except BenchError as exc:
        print(f"\nERROR: {exc}", file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)

    print(f"\nAirflow {report.get('airflow_version')}, dag-factory {report.get('dagfactory_version')}, "
          f"{args.repeats} runs per cell (after one untimed warm-up parse), {os.cpu_count()} CPUs")
    print_table(rows)
    missed = []
    for r in rows:
        if not r["targets"]["hand"]:
            missed.append(f"{r['shape']}: ours is {r['ratios']['ours_over_hand']:.2f}x hand-written "
                          f"(target <= {HAND_TARGET}x)")
        if not r["targets"]["dagfactory"]:
            missed.append(f"{r['shape']}: ours is {r['ratios']['ours_over_dagfactory']:.2f}x dag-factory "
                          "(target < 1x)")
    if missed:
        print("\nTARGET MISSED:\n  " + "\n  ".join(missed))
    else:
        print("\nAll targets met.")
    for r in rows:
        if "hotspots" in r:
            h = r["hotspots"]
            print(f"\nHotspots in plugins/erp_agents, {r['shape']} (cProfile, {h['profiled_total_s']:.2f} s profiled):")
            print(f"  {'cumulative':>10}  {'own':>8}  {'calls':>6}  function (-> costliest callees outside the plugin)")
            for row in h["by_cumulative"]:
                print(f"  {row['cumulative_s']:9.3f}s  {row['own_s']:7.3f}s  {row['calls']:>6}  {row['where']}")
                for c in row["top_callees_outside"]:
                    print(f"  {'':>10}  {'':>8}  {'':>6}    -> {c['cumulative_s']:.3f}s {c['where']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nWrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
