"""The distributed topology on this machine, without Docker: ``python -m erp_agents.stack.cluster up | down | ps``.

CeleryExecutor with its broker on the local Redis, metadata and governance databases on the local
PostgreSQL (created when missing), and, each in its own session: the LLM simulator, api-server,
scheduler, dag-processor, two triggerers and two Celery workers. The rate limiter keeps its windows
in Redis, so both triggerers share one limit. Settings come from ``cluster_settings``, as
docker-compose.yaml's do.

``up`` is idempotent (attaches when all is running and ready; starts only what is not), waits until
every component is ready, and on failure stops what it started. ``down`` stops every component by
its pid file. Logs of all components go in one folder (``ps`` prints it).
"""

from __future__ import annotations

import argparse
import datetime
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import fasteners
import psutil
from pydantic import BaseModel, ConfigDict

from erp_agents.limits.pools import sync_pools
from erp_agents.spec.models import EngineConfig
from erp_agents.stack import cluster_health, processes
from erp_agents.stack.cluster_settings import (
    COMPONENTS, GOVERNANCE_DB, METADATA_DB, TRIGGERERS, WORKERS, Endpoints,
    cluster_env, command, engine_config, engine_config_yaml,
)
from erp_agents.stack.errors import StackError
from erp_agents.stack.postgres import port_is_free
from erp_agents.stack.settings import PACKAGE_ROOT, PROJECT_ROOT, UI_USER, Layout

HOME_ENV = "ERP_AGENTS_CLUSTER_HOME"
READY_TIMEOUT_S = 240.0
DEFAULT_API_PORT = 8088
POSTGRES = "127.0.0.1:5432"
REDIS = "127.0.0.1:6379"
STOPPED_LAST = ("api-server", "llm-simulator")
REDIS_DB = 3  # the broker's and the limiter's (the limiter's keys carry their own namespace)


def default_home() -> Path:
    return Path(os.environ.get(HOME_ENV) or PROJECT_ROOT / ".airflow-cluster").resolve()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ClusterState(BaseModel):
    """What ``up`` recorded (cluster.json): ports, so a later ``up`` restarts a part on the same ones."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    home: str
    api_port: int
    simulator_port: int
    simulator_latency: float
    log_ports: dict[str, int]  # each worker's and triggerer's log server, one port each on this host

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def simulator_url(self) -> str:
        return f"http://127.0.0.1:{self.simulator_port}"


@dataclass
class Cluster:
    """The local cluster under ``home``. ``api_port``: None = the recorded port, else 8088; 0 = any free port.

    ``dags_folder`` (default: the project's ``dags``) and ``engine`` (default: the seed's defaults) let a
    benchmark run its own specs and limits on the same topology; the limiter is always the cluster's
    Redis, so one limit holds across both triggerers."""

    home: Path = field(default_factory=default_home)
    api_port: int | None = None
    simulator_latency: float | None = None
    dags_folder: Path | None = None
    engine: EngineConfig | None = None

    def __post_init__(self) -> None:
        self.home = Path(self.home).resolve()
        self.layout = Layout(self.home)

    # -- reading ------------------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.layout.folder / "cluster.json"

    @property
    def engine_config_file(self) -> Path:
        return self.layout.folder / "engine.yaml"

    def read_state(self) -> ClusterState | None:
        try:
            return ClusterState.model_validate_json(self.state_file.read_text())
        except (OSError, ValueError):
            return None

    def status(self) -> dict[str, processes.ProcessInfo | None]:
        return {name: processes.running(self.layout, name) for name in COMPONENTS}

    def endpoints(self, state: ClusterState) -> Endpoints:
        keys = self.layout.deployment_secrets()
        return Endpoints(
            postgres=POSTGRES, postgres_auth="postgres", redis=REDIS, broker_db=REDIS_DB, limiter_db=REDIS_DB,
            api_url=state.api_url, simulator_url=state.simulator_url,
            dags_folder=str(self.dags_folder or PROJECT_ROOT / "dags"), plugins_folder=str(PACKAGE_ROOT),
            pythonpath=os.pathsep.join([str(PROJECT_ROOT), str(PACKAGE_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
            engine_config=str(self.engine_config_file), fernet_key=keys["fernet_key"], jwt_secret=keys["jwt_secret"],
            openai_conn=os.environ.get("AIRFLOW_CONN_OPENAI_DEFAULT"),
        )

    def env(self, state: ClusterState, name: str | None = None) -> dict[str, str]:
        """The environment of one component (None: of a command run against the cluster)."""
        # The caller's connections (AIRFLOW_CONN_*) pass through; its settings and task context do not.
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("AIRFLOW__", "AIRFLOW_CTX_")) and k != "AIRFLOW_HOME"}
        env = {**base, **cluster_env(self.endpoints(state))}
        env.update({
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(state.api_port),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.layout.logs / "airflow"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.layout.passwords_file),
        })
        if name in TRIGGERERS:
            env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"] = str(state.log_ports[name])
        if name in WORKERS:
            env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(state.log_ports[name])
        return env

    def argv(self, state: ClusterState, name: str) -> list[str]:
        program, *args = command(name)
        head = [sys.executable] if program == "python" else [sys.executable, "-m", "airflow"]
        if name == "api-server":
            args += ["--host", "127.0.0.1", "--port", str(state.api_port)]
        if name == "llm-simulator":
            args += ["--host", "127.0.0.1", "--port", str(state.simulator_port),
                     "--latency", str(state.simulator_latency), "--log", str(self.layout.logs / "simulator.jsonl")]
        return [*head, *args]

    def login(self) -> tuple[str, str]:
        """The UI user and the password the api-server generated for it."""
        import json

        return UI_USER, str(json.loads(self.layout.passwords_file.read_text())[UI_USER])

    # -- up -----------------------------------------------------------------------------------

    def up(self, timeout: float = READY_TIMEOUT_S) -> tuple[ClusterState, bool]:
        """Start what is not running and wait until all is ready; returns (state, attached)."""
        self.layout.folder.mkdir(parents=True, exist_ok=True)
        with fasteners.InterProcessLock(str(self.layout.folder / "up.lock")):
            running = self.status()
            old = self.read_state()
            if old is not None and all(running.values()) and not self._not_ready(old):
                return old, True
            state = self._plan_state(old)
            self._check_services()
            self._create_databases()
            self.state_file.write_text(state.model_dump_json(indent=2))
            self.engine_config_file.write_text(engine_config_yaml(self.endpoints(state).limiter_url, self.engine))
            sync = None
            if not any(running.values()):
                self._run_logged("db-migrate", [sys.executable, "-m", "airflow", "db", "migrate"], state)
                sync = self._connections_sync(state)  # side by side with the components' start
            started: list[str] = []
            try:
                for name in COMPONENTS:
                    if running[name] is None:
                        if name == "api-server" and not port_is_free(state.api_port):
                            raise StackError(f"port {state.api_port} on 127.0.0.1 is taken by another program: "
                                             "stop it or choose another port (cluster up --api-port N; 0 = any free port)")
                        processes.start(self.layout, name, self.argv(state, name), self.env(state, name))
                        started.append(name)
                self.wait_ready(state, timeout)
                if sync is not None and sync.wait(timeout=120) != 0:
                    raise StackError(f"copying the connections into the metadata DB failed; see {self.layout.log_of('db-migrate')}")
                sync_pools(state.api_url, self.login(), engine_config(self.endpoints(state).limiter_url, self.engine))
            except BaseException:
                if sync is not None and sync.poll() is None:
                    sync.kill()
                for name in reversed(started):
                    processes.stop(self.layout, name)
                raise
            return state, False

    def _plan_state(self, old: ClusterState | None) -> ClusterState:
        api_port = self.api_port if self.api_port is not None else (old.api_port if old else DEFAULT_API_PORT)
        if api_port == 0:
            api_port = old.api_port if old and self.api_port == 0 and self._api_running() else free_port()
        names = (*TRIGGERERS, *WORKERS)
        return ClusterState(
            home=str(self.home), api_port=api_port,
            simulator_port=old.simulator_port if old else free_port(),
            simulator_latency=self.simulator_latency if self.simulator_latency is not None
            else (old.simulator_latency if old else 0.2),
            log_ports={n: (old.log_ports.get(n) if old and n in old.log_ports else None) or free_port() for n in names},
        )

    def _api_running(self) -> bool:
        return processes.running(self.layout, "api-server") is not None

    def _check_services(self) -> None:
        for what, address in (("PostgreSQL", POSTGRES), ("Redis", REDIS)):
            host, port = address.split(":")
            try:
                socket.create_connection((host, int(port)), timeout=3).close()
            except OSError as exc:
                raise StackError(f"{what} is not reachable at {address} ({exc}): the cluster needs the local server") from None

    def _create_databases(self) -> None:
        import psycopg2

        host, port = POSTGRES.split(":")
        conn = psycopg2.connect(host=host, port=int(port), user="postgres", dbname="postgres")
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                for name in (METADATA_DB, GOVERNANCE_DB):
                    cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                    if cur.fetchone() is None:
                        cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()

    def _connections_sync(self, state: ClusterState) -> subprocess.Popen[bytes]:
        """The environment's connections into the metadata DB, for the REST API (see cluster_connections)."""
        with self.layout.log_of("db-migrate").open("ab") as log:
            return subprocess.Popen([sys.executable, "-m", "erp_agents.stack.cluster_connections"], env=self.env(state),
                                    cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT)

    def _run_logged(self, log_name: str, argv: list[str], state: ClusterState) -> None:
        self.layout.logs.mkdir(parents=True, exist_ok=True)
        with self.layout.log_of(log_name).open("ab") as log:
            done = subprocess.run(argv, env=self.env(state), cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=600)
        if done.returncode != 0:
            raise StackError(f"`{' '.join(argv[1:])}` failed; see {self.layout.log_of(log_name)}\n" + self._tail(log_name))

    def _not_ready(self, state: ClusterState) -> list[str]:
        env = cluster_env(self.endpoints(state))
        starts = [info.started for name in TRIGGERERS if (info := processes.running(self.layout, name))]
        # a TriggererJob row of a triggerer that died earlier may still look alive: count only newer ones
        since = datetime.datetime.fromtimestamp(min(starts, default=0) - 5, datetime.timezone.utc)
        return cluster_health.not_ready(
            api_url=state.api_url, simulator_url=state.simulator_url,
            metadata_url=env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], broker_url=env["AIRFLOW__CELERY__BROKER_URL"],
            since=since,
        )

    def wait_ready(self, state: ClusterState, timeout: float = READY_TIMEOUT_S) -> None:
        """Until every component is ready; a component that exits meanwhile fails at once with its log's end."""
        deadline = time.monotonic() + timeout
        while True:
            for name in COMPONENTS:
                if processes.running(self.layout, name) is None:
                    raise StackError(f"{name} exited during start-up; end of {self.layout.log_of(name)}:\n" + self._tail(name))
            waiting = self._not_ready(state)
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise StackError(f"not ready after {timeout:.0f} s: {', '.join(waiting)}; logs in {self.layout.logs}")
            time.sleep(1.0)

    def _tail(self, name: str, chars: int = 3000) -> str:
        try:
            return self.layout.log_of(name).read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def restart(self, name: str, timeout: float = READY_TIMEOUT_S) -> None:
        """Stop one component (SIGTERM: a triggerer hands its triggers back) and start it again."""
        state = self._require_state()
        processes.stop(self.layout, name)
        pid = processes.start(self.layout, name, self.argv(state, name), self.env(state, name))
        since = datetime.datetime.fromtimestamp(psutil.Process(pid).create_time() - 5, datetime.timezone.utc)
        metadata_url = cluster_env(self.endpoints(state))["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        deadline = time.monotonic() + timeout
        while not self._back(state, name, since, metadata_url):
            if processes.running(self.layout, name) is None:
                raise StackError(f"{name} exited after its restart; end of {self.layout.log_of(name)}:\n" + self._tail(name))
            if time.monotonic() > deadline:
                raise StackError(f"{name} not ready {timeout:.0f} s after its restart; see {self.layout.log_of(name)}")
            time.sleep(0.5)

    def _back(self, state: ClusterState, name: str, since: datetime.datetime, metadata_url: str) -> bool:
        """One restarted component is ready (the others may be down on purpose)."""
        if name in TRIGGERERS:
            return bool(cluster_health.live_triggerers(metadata_url, since))
        if name in WORKERS:
            return cluster_health.worker_hostnames([name]) <= cluster_health.answering_workers(
                self.endpoints(state).broker_url)
        if name == "llm-simulator":
            return cluster_health.simulator_ready(state.simulator_url)
        return cluster_health.api_ready(state.api_url)

    def kill(self, name: str) -> int | None:
        """kill -9 one component and every process it started; the rest of the cluster goes on."""
        return processes.kill(self.layout, name)

    def _require_state(self) -> ClusterState:
        state = self.read_state()
        if state is None:
            raise StackError(f"no cluster under {self.home}: run `cluster up` first")
        return state

    # -- down ---------------------------------------------------------------------------------

    def down(self) -> list[str]:
        """Stop every component by its pid file, returns what was stopped. Everything that runs
        tasks or schedules them stops first, side by side (workers finish or give back their
        tasks while the api-server still answers them), then the api-server and the simulator.
        The databases and Redis are the machine's and stay up."""
        from concurrent.futures import ThreadPoolExecutor

        stopped: list[str] = []
        first = [name for name in reversed(COMPONENTS) if name not in STOPPED_LAST]
        with ThreadPoolExecutor(max_workers=len(COMPONENTS)) as pool:
            for group in (first, list(STOPPED_LAST)):
                done = list(pool.map(lambda name: processes.stop(self.layout, name), group))
                stopped += [name for name, was in zip(group, done) if was]
        return stopped


# -- command line ---------------------------------------------------------------------------------


def _cluster(args: argparse.Namespace) -> Cluster:
    return Cluster(home=Path(args.home) if args.home else default_home(), api_port=getattr(args, "api_port", None),
                   simulator_latency=getattr(args, "sim_latency", None))


def _up(args: argparse.Namespace) -> int:
    cluster = _cluster(args)
    began = time.monotonic()
    state, attached = cluster.up()
    user, password = cluster.login()
    print(f"cluster {'already running' if attached else f'started in {time.monotonic() - began:.1f} s'}: "
          f"{state.api_url}  (login: {user} / {password})")
    print(f"  metadata DB:  postgresql://{POSTGRES}/{METADATA_DB}   governance: {GOVERNANCE_DB}")
    print(f"  broker:       redis://{REDIS}/{REDIS_DB}   simulator: {state.simulator_url}")
    print(f"  logs:         {cluster.layout.logs}")
    return 0


def _down(args: argparse.Namespace) -> int:
    cluster = _cluster(args)
    stopped = cluster.down()
    print(f"stopped: {', '.join(stopped)}" if stopped else f"nothing is running under {cluster.home}")
    return 0


def _ps(args: argparse.Namespace) -> int:
    cluster = _cluster(args)
    status = cluster.status()
    print(f"{'component':<14} {'pid':>8} {'PSS MB':>8}")
    for name, info in status.items():
        print(f"{name:<14} {info.pid:>8} {info.pss_bytes / 2**20:>8.0f}" if info else f"{name:<14} {'-':>8}")
    state = cluster.read_state()
    if state is not None and all(status.values()):
        print(f"UI: {state.api_url}   logs: {cluster.layout.logs}")
    return 0 if all(status.values()) else 1


def _add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    for name, func, text in (("up", _up, "start the local cluster or attach to it"),
                             ("down", _down, "stop the local cluster"),
                             ("ps", _ps, "show the local cluster's processes")):
        parser = sub.add_parser(name, help=text)
        parser.add_argument("--home", help=f"AIRFLOW_HOME of the cluster (default: ${HOME_ENV} or .airflow-cluster)")
        if name == "up":
            parser.add_argument("--api-port", type=int, help=f"api-server port (default {DEFAULT_API_PORT}; 0 = any free port)")
            parser.add_argument("--sim-latency", type=float, help="seconds per simulated model call (default 0.2)")
        parser.set_defaults(func=func)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``cluster up | down | ps`` to the ``python -m erp_agents`` parser."""
    parser = subparsers.add_parser("cluster", help="the Celery topology on this machine (two triggerers, two workers)")
    _add_commands(parser.add_subparsers(dest="cluster_command", required=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m erp_agents.stack.cluster", description=__doc__)
    _add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
