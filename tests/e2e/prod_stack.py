"""The production shape of Airflow 3 on one host: PostgreSQL, Redis, CeleryExecutor, HA triggerers.

Processes (all on 127.0.0.1, free ports, each the leader of its own session so that stopping it ends everything it
forked): ``postgres`` (own data dir; as the ``postgres`` user when run by root, which PostgreSQL refuses), ``redis``
(broker), then ``airflow db migrate`` and api-server, scheduler, dag-processor, two triggerers and two Celery
workers. Every Airflow process gets the same configuration through the environment — metadata DB, broker, fernet
key, ``[api_auth] jwt_secret``, ``[api] secret_key``, ``[core] execution_api_server_url`` — plus the emulator's
``client_env()`` (the Azure Backup connection and the CA), and a log-server port of its own (several workers and
triggerers on one host would otherwise fight for ports 8793/8794). Celery workers get distinct node names.

Each process's pid (and its kernel start time, so that a recycled pid is never signalled) is written to
``<root>/run/<name>.pid``; :func:`stop_from_pid_files` ends exactly those, also from another process
(``make stack-down``). Used by ``scripts/stack.py`` (``make stack``) and ``tests/e2e/test_production_shape.py``.

This module never imports Airflow (the pytest process has an Airflow configuration of its own); it reads the
metadata DB with psycopg2 and pings the Celery workers with celery's own client.
"""

from __future__ import annotations

import base64
import contextlib
import os
import pathlib
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from .stack import TERMINAL_RUN_STATES, RunObservation, StackError, free_port, tail

REPO = pathlib.Path(__file__).resolve().parents[2]
AIRFLOW = (sys.executable, "-m", "airflow")
TRIGGERERS = ("triggerer-1", "triggerer-2")
WORKERS = ("worker-1", "worker-2")
AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", *TRIGGERERS, *WORKERS)
SERVERS = ("postgres", "redis")
DB_NAME = "airflow"
DB_USER = "airflow"


NODE_ENV = "AIRFLOW_STACK_NODE"


def node_hostname() -> str:
    """``[core] hostname_callable`` of the stack: each process reports its own node name (``worker-1``...), as if
    every component ran on a host of its own, so ``task_instance.hostname`` names the worker that ran a try and
    ``job.hostname`` the triggerer that holds a trigger."""
    return os.environ.get(NODE_ENV) or socket.getfqdn()


def postgres_bin() -> pathlib.Path:
    """Directory with Debian's ``initdb``/``postgres`` (``scripts/stack/install-servers.sh`` installs them)."""
    candidates = sorted(pathlib.Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    which = shutil.which("initdb")
    if which:
        candidates.append(pathlib.Path(which).parent)
    for directory in candidates:
        if (directory / "initdb").exists() and (directory / "postgres").exists():
            return directory
    raise StackError("PostgreSQL server binaries not found; run scripts/stack/install-servers.sh (make stack does)")


def redis_server() -> str:
    found = shutil.which("redis-server")
    if not found:
        raise StackError("redis-server not found; run scripts/stack/install-servers.sh (make stack does)")
    return found


# ---- processes: pid files and sessions ---------------------------------------------------------------------------


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after ``pid (comm)``: state ppid pgrp session ... (None if gone)."""
    try:
        return (pathlib.Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_time(pid: int) -> str | None:
    fields = _proc_stat(pid)
    return fields[19] if fields else None  # field 22 of stat: start time in clock ticks since boot


def alive(pid: int) -> bool:
    fields = _proc_stat(pid)
    return fields is not None and fields[0] != "Z"


def session_members(sessions: set[int]) -> list[int]:
    """Live (non-zombie) processes whose session id is one of ``sessions``."""
    members = []
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z" and int(fields[3]) in sessions:
                members.append(int(stat.parent.name))
    return members


def kill_session(leader: int, sig: signal.Signals = signal.SIGKILL) -> list[int]:
    """Signal every live process of the session ``leader`` leads (the whole tree, setpgid'd task runners included)."""
    members = session_members({leader})
    for pid in members:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
    return members


def read_pid_files(run_dir: pathlib.Path) -> dict[str, int]:
    """Pids from ``run_dir/*.pid`` whose process is still the one recorded (same kernel start time)."""
    pids: dict[str, int] = {}
    for path in sorted(run_dir.glob("*.pid")):
        with contextlib.suppress(OSError, ValueError):
            pid_text, _, started = path.read_text().strip().partition(" ")
            pid = int(pid_text)
            if alive(pid) and start_time(pid) == started:
                pids[path.stem] = pid
    return pids


def stop_processes(pids: Mapping[str, int], order: tuple[tuple[str, ...], ...], grace: float = 10.0) -> None:
    """Stop the named sessions group by group (``order``), TERM (INT for postgres: fast shutdown), then KILL."""
    remaining = dict(pids)
    groups = [*order, tuple(name for name in remaining if not any(name in group for group in order))]
    for group in groups:
        leaders = {name: remaining.pop(name) for name in group if name in remaining}
        if not leaders:
            continue
        for name, pid in leaders.items():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGINT if name == "postgres" else signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(alive(pid) for pid in leaders.values()) and time.monotonic() < deadline:
            time.sleep(0.1)
        sessions = set(leaders.values())
        deadline = time.monotonic() + 10
        while (members := session_members(sessions)) and time.monotonic() < deadline:
            for pid in members:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)


def stop_from_pid_files(root: pathlib.Path, grace: float = 10.0) -> dict[str, int]:
    """Stop what ``root/run/*.pid`` records (Airflow first, then the emulator, Redis, PostgreSQL); returns it."""
    run_dir = root / "run"
    pids = read_pid_files(run_dir)
    stop_processes(pids, (AIRFLOW_COMPONENTS, ("emulator",), ("redis",), ("postgres",)), grace=grace)
    for path in run_dir.glob("*.pid"):
        path.unlink(missing_ok=True)
    return pids


# ---- the stack ---------------------------------------------------------------------------------------------------


@dataclass
class ProductionStack:
    """Start with :meth:`start`, end with :meth:`stop` (idempotent; safe after a failed start).

    :param root: Directory of everything the stack writes: ``pgdata/``, ``redis/``, ``airflow-home/``, ``logs/``
        (one file per process) and ``run/`` (pid files). Must be traversable by the ``postgres`` user when root.
    :param client_env: The emulator's ``client_env()``, exported into every Airflow process.
    :param dags_folder: ``[core] dags_folder`` of every process.
    :param extra_env: More settings for every Airflow process (e.g. ``AIRFLOW__SCHEDULER__...``).
    :param worker_concurrency: Celery pool size of each worker.
    """

    root: pathlib.Path
    client_env: Mapping[str, str]
    dags_folder: pathlib.Path = REPO / "example_dags"
    extra_env: Mapping[str, str] = field(default_factory=dict)
    worker_concurrency: int = 4
    pg_port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    fernet_key: str = field(default_factory=lambda: base64.urlsafe_b64encode(os.urandom(32)).decode())
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    api_secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    log_ports: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    _files: list[TextIO] = field(default_factory=list)

    # ---- paths and settings ------------------------------------------------------------------------------------

    @property
    def home(self) -> pathlib.Path:
        return self.root / "airflow-home"

    @property
    def logs(self) -> pathlib.Path:
        return self.root / "logs"

    @property
    def run_dir(self) -> pathlib.Path:
        return self.root / "run"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def db_dsn(self) -> str:
        return f"host=127.0.0.1 port={self.pg_port} user={DB_USER} dbname={DB_NAME}"

    @property
    def broker_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def log_path(self, name: str) -> pathlib.Path:
        return self.logs / f"{name}.log"

    def env(self, name: str | None = None) -> dict[str, str]:
        """The parent's environment without its Airflow settings, plus the stack's (and ``name``'s log ports)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
        env.pop("AZURE_BACKUP_EXAMPLE_POKE_INTERVAL", None)
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # later starts reuse the first one's bytecode
        no_proxy = ",".join(filter(None, [env.get("NO_PROXY") or env.get("no_proxy"), "127.0.0.1", "localhost"]))
        pg = f"{DB_USER}@127.0.0.1:{self.pg_port}/{DB_NAME}"
        env.update(
            {
                "NO_PROXY": no_proxy,
                "no_proxy": no_proxy,
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                # The same secrets in every process: tokens the api-server signs must verify in the workers and the
                # connection passwords one process encrypts must decrypt in the others.
                "AIRFLOW__CORE__FERNET_KEY": self.fernet_key,
                "AIRFLOW__API_AUTH__JWT_SECRET": self.jwt_secret,
                "AIRFLOW__API__SECRET_KEY": self.api_secret_key,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{pg}",
                "AIRFLOW__CELERY__BROKER_URL": self.broker_url,
                # Name the driver: SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3.
                "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://{pg}",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                # See tests/e2e/stack.py and apache/airflow #71172: keep the supervisor's exit notice well ahead of
                # the next reschedule date (poke_interval >= 5 s). Every running task heartbeats this often.
                "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2",
                **self.extra_env,
                **self.client_env,
            }
        )
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] = "tests.e2e.prod_stack.node_hostname"
        if name is not None:
            env[NODE_ENV] = name
            # A log server of its own for each process (on separate hosts they would all use 8793 / 8794).
            env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(self.log_ports[f"{name}:worker"])
            env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"] = str(self.log_ports[f"{name}:trigger"])
        return env

    def command(self, name: str) -> list[str]:
        if name == "api-server":
            return [*AIRFLOW, "api-server", "--apps", "all", "-H", "127.0.0.1", "-p", str(self.api_port)]
        if name in WORKERS:
            # A node name of its own: two workers called celery@<host> would clash in the broker's control plane.
            return [
                *AIRFLOW,
                "celery",
                "worker",
                "--celery-hostname",
                f"{name}@%h",
                "--concurrency",
                str(self.worker_concurrency),
                "--without-mingle",
                "--without-gossip",
            ]
        if name in TRIGGERERS:
            return [*AIRFLOW, "triggerer"]
        return [*AIRFLOW, name]

    # ---- lifecycle ---------------------------------------------------------------------------------------------

    def start(self, timeout: float = 180.0, dag_ids: tuple[str, ...] = ()) -> None:
        """PostgreSQL and Redis, ``airflow db migrate``, then every component; returns once all are healthy."""
        started = time.monotonic()
        for directory in (self.root, self.logs, self.run_dir, self.home):
            directory.mkdir(parents=True, exist_ok=True)
        self._start_servers(timeout)
        self.timings["servers"] = time.monotonic() - started
        env = self.env()
        with self.log_path("db-migrate").open("w") as out:
            result = subprocess.run(
                [*AIRFLOW, "db", "migrate"],
                env=env,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        self.timings["db migrate"] = time.monotonic() - started - self.timings["servers"]
        if result.returncode != 0:
            raise StackError(f"airflow db migrate exited {result.returncode}\n{tail(self.log_path('db-migrate'))}")
        for name in AIRFLOW_COMPONENTS:
            self.log_ports[f"{name}:worker"] = free_port()
            self.log_ports[f"{name}:trigger"] = free_port()
            self._spawn(name, self.command(name), self.env(name), cwd=self.home)
        self.wait_until(self.healthy, timeout=timeout, what="every component to report healthy")
        self.timings["healthy"] = time.monotonic() - started
        self.wait_until(
            lambda: all(self._dag_loaded(dag_id) for dag_id in dag_ids),
            timeout=timeout,
            what=f"DAGs {', '.join(dag_ids)} to be parsed and unpaused",
        )
        self.timings["ready"] = time.monotonic() - started

    def _spawn(
        self, name: str, command: list[str], env: Mapping[str, str], cwd: pathlib.Path, user: str | None = None
    ) -> subprocess.Popen[bytes]:
        out = self.log_path(name).open("a")
        self._files.append(out)
        process = subprocess.Popen(
            command,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own session: stop() ends it and everything it forked
            user=user,
            group=user,
            extra_groups=[] if user is not None else None,
        )
        self.processes[name] = process
        (self.run_dir / f"{name}.pid").write_text(f"{process.pid} {start_time(process.pid)}\n")
        return process

    def _start_servers(self, timeout: float) -> None:
        pg_bin = postgres_bin()
        pgdata = self.root / "pgdata"
        user = None
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root: use the account Debian's package created
            user = "postgres"
            pw = pwd.getpwnam(user)
        if not (pgdata / "PG_VERSION").exists():
            pgdata.mkdir(mode=0o700, exist_ok=True)
            if user is not None:
                os.chown(pgdata, pw.pw_uid, pw.pw_gid)
            with self.log_path("initdb").open("w") as out:
                result = subprocess.run(
                    [
                        *(str(pg_bin / "initdb"), "-D", str(pgdata), "-U", DB_USER, "--auth=trust", "-E", "UTF8"),
                        *("--no-sync", "--no-instructions"),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    user=user,
                    group=user,
                    extra_groups=[] if user is not None else None,
                    cwd=pgdata,
                    timeout=timeout,
                    check=False,
                )
            if result.returncode != 0:
                raise StackError(f"initdb exited {result.returncode}\n{tail(self.log_path('initdb'))}")
        # Throwaway data: no fsync. Only TCP on loopback; the socket directory is the data directory.
        settings = ["listen_addresses=127.0.0.1", f"port={self.pg_port}", f"unix_socket_directories={pgdata}"]
        settings += ["fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=200"]
        self._spawn(
            "postgres",
            [str(pg_bin / "postgres"), "-D", str(pgdata), *(arg for s in settings for arg in ("-c", s))],
            {"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"},
            cwd=pgdata,
            user=user,
        )
        redis_dir = self.root / "redis"
        redis_dir.mkdir(exist_ok=True)
        self._spawn(
            "redis",
            [
                *(redis_server(), "--bind", "127.0.0.1", "--port", str(self.redis_port), "--protected-mode", "yes"),
                *("--save", "", "--appendonly", "no", "--dir", str(redis_dir)),
            ],
            {"PATH": os.environ.get("PATH", "")},
            cwd=redis_dir,
        )
        self.wait_until(self._postgres_ready, timeout=timeout, what="PostgreSQL to accept connections")
        self.wait_until(self._redis_ready, timeout=timeout, what="Redis to answer PING")

    def stop(self, grace: float = 10.0) -> None:
        """Stop everything this stack started (from its pid files), then close the log files."""
        stop_from_pid_files(self.root, grace=grace)
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        for out in self._files:
            out.close()
        self._files.clear()

    def running_members(self) -> list[int]:
        """Live processes in the sessions of everything this stack started (empty after :meth:`stop`)."""
        return session_members({process.pid for process in self.processes.values()})

    def kill_component(self, name: str) -> list[int]:
        """SIGKILL one component's whole process tree (its session); returns the pids signalled."""
        members = kill_session(self.processes[name].pid)
        self.processes[name].wait(timeout=10)
        (self.run_dir / f"{name}.pid").unlink(missing_ok=True)
        return members

    def diagnostics(self, lines: int = 30) -> str:
        parts = []
        for name, process in self.processes.items():
            parts.append(f"----- {name} (exit code {process.poll()}) -----\n{tail(self.log_path(name), lines)}")
        return "\n".join(parts)

    # ---- health ------------------------------------------------------------------------------------------------

    def wait_until(
        self,
        predicate: Callable[[], bool],
        *,
        timeout: float,
        what: str,
        interval: float = 0.5,
        expected_dead: frozenset[str] = frozenset(),
    ) -> None:
        deadline = time.monotonic() + timeout
        while True:
            dead = {
                name: p.returncode
                for name, p in self.processes.items()
                if name not in expected_dead and p.poll() is not None
            }
            if dead:
                raise StackError(f"stack process(es) exited while waiting for {what}: {dead}\n{self.diagnostics()}")
            if predicate():
                return
            if time.monotonic() > deadline:
                raise StackError(f"timed out after {timeout:.0f} s waiting for {what}\n{self.diagnostics()}")
            time.sleep(interval)

    def _postgres_ready(self) -> bool:
        import psycopg2

        try:
            connection = psycopg2.connect(f"host=127.0.0.1 port={self.pg_port} user={DB_USER} dbname=postgres")
        except psycopg2.OperationalError:
            return False
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,))
                if cursor.fetchone() is None:
                    cursor.execute(f"CREATE DATABASE {DB_NAME}")
        finally:
            connection.close()
        return True

    def _redis_ready(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(host="127.0.0.1", port=self.redis_port, socket_timeout=2).ping())
        except redis.RedisError:
            return False

    def celery_ping(self, timeout: float = 2.0) -> set[str]:
        """Node names of the Celery workers that answer a broadcast ping."""
        from celery import Celery

        app = Celery(broker=self.broker_url)
        try:
            replies = app.control.ping(timeout=timeout) or []
        except Exception:  # broker not ready yet, or a reply arrived half-formed: not healthy (yet)
            return set()
        finally:
            app.close()
        return {name for reply in replies for name in reply}

    def alive_triggerers(self, threshold: float = 30.0) -> list[tuple[int, str]]:
        """``(job id, hostname)`` of triggerer jobs running with a heartbeat newer than ``threshold`` seconds."""
        return [
            (int(row[0]), str(row[1]))
            for row in self.query(
                "SELECT id, hostname FROM job WHERE job_type = 'TriggererJob' AND state = 'running' "
                "AND latest_heartbeat > now() - make_interval(secs => %s) ORDER BY id",
                (threshold,),
            )
        ]

    def healthy(self) -> bool:
        """The api-server's health endpoint says every component is healthy, both triggerers heartbeat and both
        Celery workers answer a ping."""
        try:
            health = self.api("GET", "/api/v2/monitor/health", timeout=5)
        except (OSError, ValueError):
            return False
        components = ("metadatabase", "scheduler", "triggerer", "dag_processor")
        if not all((health.get(c) or {}).get("status") == "healthy" for c in components):
            return False
        if len(self.alive_triggerers()) < len(TRIGGERERS):
            return False
        nodes = {node.split("@", 1)[0] for node in self.celery_ping()}
        return nodes >= set(WORKERS)

    def _dag_loaded(self, dag_id: str) -> bool:
        rows = self.query("SELECT is_paused FROM dag WHERE dag_id = %s AND NOT is_stale", (dag_id,))
        return bool(rows) and not rows[0][0]

    # ---- REST API and metadata DB ------------------------------------------------------------------------------

    def api(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
        from tests.e2e.stack import rest_call  # one REST helper for both stacks

        return rest_call(self.api_url, method, path, body, timeout)

    @contextlib.contextmanager
    def _db(self) -> Iterator[Any]:
        import psycopg2

        connection = psycopg2.connect(self.db_dsn, connect_timeout=5)
        try:
            connection.set_session(readonly=True, autocommit=True)
            yield connection
        finally:
            connection.close()

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        import psycopg2

        try:
            with self._db() as db, db.cursor() as cursor:
                cursor.execute(sql, params)
                return list(cursor.fetchall())
        except psycopg2.Error as error:  # not migrated yet, or the server is starting
            if "does not exist" in str(error) or isinstance(error, psycopg2.OperationalError):
                return []
            raise

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> RunObservation:
        triggered_at = time.monotonic()
        body = {"logical_date": None, "conf": dict(conf or {})}
        dag_run = self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)
        return RunObservation(dag_id=dag_id, run_id=str(dag_run["dag_run_id"]), triggered_at=triggered_at)

    def observe(self, run: RunObservation) -> None:
        rows = self.query("SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", (run.dag_id, run.run_id))
        run.run_state = rows[0][0] if rows else None
        tis = self.query(
            "SELECT task_id, state FROM task_instance WHERE dag_id = %s AND run_id = %s", (run.dag_id, run.run_id)
        )
        run.record(dict(tis))
        if run.run_state in TERMINAL_RUN_STATES and run.finished_at is None:
            run.finished_at = time.monotonic()
