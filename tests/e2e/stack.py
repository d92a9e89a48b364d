"""A real, headless Airflow 3 stack (api-server, scheduler, dag-processor, triggerer) on SQLite, for the e2e tests.

Every process gets its own ``AIRFLOW_HOME`` (a temp dir), free ports (api-server and both log servers), a shared JWT
secret and its own session, so :meth:`AirflowStack.stop` can end it and everything it forked. The state of DAG
runs is read straight from the SQLite metadata DB (stdlib ``sqlite3``, read-only, one short transaction per read);
runs are triggered through the REST API (``simple_auth_manager_all_admins``: no login needed on 127.0.0.1).

This module never imports Airflow: the pytest process has its own Airflow configuration (tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

REPO = pathlib.Path(__file__).resolve().parents[2]
DAGS_FOLDER = REPO / "example_dags"
AIRFLOW = (sys.executable, "-m", "airflow")  # the Airflow of the interpreter running the tests
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
TERMINAL_RUN_STATES = frozenset({"success", "failed"})


class StackError(AssertionError):
    """The stack did not start, or a DAG run did not reach the expected state in time (message has the log tails)."""


def free_port() -> int:
    """A TCP port nobody listens on right now (bind to port 0 and let the kernel choose)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rest_call(api_url: str, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
    """One JSON call to an api-server on loopback (no proxy); an HTTP error is a ValueError with its detail."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(api_url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace")
        raise ValueError(f"{method} {path} -> {error.code}: {detail}") from None


def tail(path: pathlib.Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        return f"<{path.name}: {error}>"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class RunObservation:
    """What polling one DAG run saw: every state of every task (in order of first sight) and the final run state."""

    dag_id: str
    run_id: str
    run_state: str | None = None
    task_states: dict[str, str | None] = field(default_factory=dict)
    seen: dict[str, list[str | None]] = field(default_factory=dict)
    triggers: dict[str, set[str]] = field(default_factory=dict)  # task id -> classpaths of triggers it deferred to
    triggered_at: float = 0.0
    finished_at: float | None = None

    @property
    def wall_seconds(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.triggered_at

    def record(self, task_states: Mapping[str, str | None]) -> None:
        self.task_states = dict(task_states)
        for task_id, state in task_states.items():
            history = self.seen.setdefault(task_id, [])
            if not history or history[-1] != state:
                history.append(state)


@dataclass
class AirflowStack:
    """Start with :meth:`start`, end with :meth:`stop` (idempotent; safe after a failed start)."""

    home: pathlib.Path
    client_env: Mapping[str, str]
    poke_interval: int = 5
    api_port: int = field(default_factory=free_port)
    worker_log_port: int = field(default_factory=free_port)
    trigger_log_port: int = field(default_factory=free_port)
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    _files: list[TextIO] = field(default_factory=list)

    # ---- configuration -------------------------------------------------------------------------------------------

    @property
    def db_path(self) -> pathlib.Path:
        return self.home / "airflow.db"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def log_path(self, name: str) -> pathlib.Path:
        return self.home / f"{name}.log"

    def env(self) -> dict[str, str]:
        """The parent's environment without any Airflow setting of the pytest process, plus the stack's own."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
        env.pop("AZURE_BACKUP_EXAMPLE_POKE_INTERVAL", None)
        # Let the first Airflow process write bytecode: every later start-up (and CLI call) is then ~2x faster.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        no_proxy = ",".join(filter(None, [env.get("NO_PROXY") or env.get("no_proxy"), "127.0.0.1", "localhost"]))
        env.update(
            {
                "NO_PROXY": no_proxy,
                "no_proxy": no_proxy,
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API_AUTH__JWT_SECRET": self.jwt_secret,
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.db_path}",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                # The task supervisor notices its child's exit only at its next select() timeout, which is this
                # interval (default 5 s) whenever the sockets close before the child can be reaped. A 5 s tail on
                # a poke delays the executor's "success" event past the next reschedule date (poke_interval 5) and
                # the scheduler fails the sensor (apache/airflow #71172). 1 s keeps the event well ahead.
                "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.worker_log_port),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.trigger_log_port),
                "AZURE_BACKUP_EXAMPLE_POKE_INTERVAL": str(self.poke_interval),
                **self.client_env,
            }
        )
        return env

    # ---- lifecycle -----------------------------------------------------------------------------------------------

    def start(self, timeout: float = 120.0, dag_ids: tuple[str, ...] = ()) -> None:
        """``airflow db migrate``, then the four components; returns once all report healthy and the DAGs exist."""
        self.home.mkdir(parents=True, exist_ok=True)
        env = self.env()
        started = time.monotonic()
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
        self.timings["db migrate"] = time.monotonic() - started
        if result.returncode != 0:
            raise StackError(f"airflow db migrate exited {result.returncode}\n{tail(self.log_path('db-migrate'))}")
        for name in COMPONENTS:
            args = ["api-server", "--apps", "all", "-H", "127.0.0.1", "-p", str(self.api_port)]
            command = [*AIRFLOW, *(args if name == "api-server" else [name])]
            out = self.log_path(name).open("w")
            self._files.append(out)
            self.processes[name] = subprocess.Popen(
                command,
                env=env,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop() signals it and everything it forked
            )
        self.wait_until(self._healthy, timeout=timeout, what="the stack to report healthy")
        self.timings["healthy"] = time.monotonic() - started
        self.wait_until(
            lambda: all(self._dag_loaded(dag_id) for dag_id in dag_ids),
            timeout=timeout,
            what=f"DAGs {', '.join(dag_ids)} to be parsed and unpaused",
        )
        self.timings["ready"] = time.monotonic() - started

    def stop(self, grace: float = 5.0) -> None:
        """TERM every process group, KILL whatever is left after ``grace`` seconds, then any straggler."""
        for process in self.processes.values():
            self._signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        for process in self.processes.values():
            self._signal_group(process, signal.SIGKILL)  # the group may outlive its leader (workers, log servers)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        # Task runners move to process groups of their own (setpgid), but stay in the session each component
        # leads (start_new_session=True): kill what is left of those sessions.
        deadline = time.monotonic() + 5
        while (stragglers := self._session_members()) and time.monotonic() < deadline:
            for pid in stragglers:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        for out in self._files:
            out.close()
        self._files.clear()

    @staticmethod
    def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        # With start_new_session=True the process group id is the leader's pid, alive or not.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)

    def _session_members(self) -> list[int]:
        """Live (non-zombie) processes in the sessions of the components (Linux ``/proc``; empty elsewhere)."""
        sessions = {process.pid for process in self.processes.values()}
        members = []
        for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp session
                if fields[0] != "Z" and int(fields[3]) in sessions:
                    members.append(int(stat.parent.name))
        return members

    def diagnostics(self, dag_id: str | None = None, lines: int = 40) -> str:
        """Tails of every component log (and of the task logs of ``dag_id``) for an assertion message."""
        parts = []
        for name, process in self.processes.items():
            parts.append(f"----- {name} (exit code {process.poll()}) -----\n{tail(self.log_path(name), lines)}")
        if dag_id is not None:
            for path in sorted((self.home / "logs").glob(f"dag_id={dag_id}/**/*.log*")):
                parts.append(f"----- {path.relative_to(self.home)} -----\n{tail(path, 15)}")
        return "\n".join(parts)

    # ---- waiting -------------------------------------------------------------------------------------------------

    def wait_until(self, predicate: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.5) -> None:
        deadline = time.monotonic() + timeout
        while True:
            dead = {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}
            if dead:
                raise StackError(f"stack process(es) exited while waiting for {what}: {dead}\n{self.diagnostics()}")
            if predicate():
                return
            if time.monotonic() > deadline:
                raise StackError(f"timed out after {timeout:.0f} s waiting for {what}\n{self.diagnostics()}")
            time.sleep(interval)

    def _healthy(self) -> bool:
        try:
            health = self.api("GET", "/api/v2/monitor/health")
        except (OSError, ValueError):
            return False
        components = ("metadatabase", "scheduler", "triggerer", "dag_processor")
        return all((health.get(c) or {}).get("status") == "healthy" for c in components)

    def _dag_loaded(self, dag_id: str) -> bool:
        rows = self.query("SELECT is_paused FROM dag WHERE dag_id = ? AND is_stale = 0", (dag_id,))
        return bool(rows) and not rows[0][0]

    # ---- REST API and metadata DB --------------------------------------------------------------------------------

    def api(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
        return rest_call(self.api_url, method, path, body, timeout)

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        connection = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
        try:
            yield connection
        finally:
            connection.close()

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        for attempt in range(5):
            try:
                with self._db() as db:
                    return db.execute(sql, params).fetchall()
            except sqlite3.OperationalError as error:  # "database is locked" under a long write; try again
                if "locked" not in str(error) or attempt == 4:
                    raise
                time.sleep(0.2)
        raise AssertionError("unreachable")

    def trigger(self, dag_id: str) -> RunObservation:
        """Trigger one run. SQLite may answer a busy api-server with a 500 ("database is locked"): the run id is
        ours, so a retry either creates that run or finds it already made (409) — never a second run."""
        triggered_at = time.monotonic()
        run_id = f"e2e__{secrets.token_hex(6)}"
        for attempt in range(5):
            try:
                self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "dag_run_id": run_id})
                break
            except ValueError as error:
                if "-> 409" in str(error):
                    break
                if "-> 500" not in str(error) or attempt == 4:
                    raise
                time.sleep(1.0)
        return RunObservation(dag_id=dag_id, run_id=run_id, triggered_at=triggered_at)

    def observe(self, run: RunObservation) -> None:
        rows = self.query("SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?", (run.dag_id, run.run_id))
        run.run_state = rows[0][0] if rows else None
        tis = self.query(
            "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?", (run.dag_id, run.run_id)
        )
        run.record(dict(tis))
        deferred = self.query(
            'SELECT ti.task_id, t.classpath FROM task_instance ti JOIN "trigger" t ON t.id = ti.trigger_id '
            "WHERE ti.dag_id = ? AND ti.run_id = ?",
            (run.dag_id, run.run_id),
        )
        for task_id, classpath in deferred:
            run.triggers.setdefault(task_id, set()).add(classpath)
        if run.run_state in TERMINAL_RUN_STATES and run.finished_at is None:
            run.finished_at = time.monotonic()

    def wait_for_run(self, run: RunObservation, timeout: float = 180.0, interval: float = 0.5) -> RunObservation:
        """Poll the run every ``interval`` seconds (each task's states are recorded) until it ends or times out."""

        def done() -> bool:
            self.observe(run)
            return run.run_state in TERMINAL_RUN_STATES

        self.wait_until(done, timeout=timeout, what=f"DAG run {run.dag_id} {run.run_id} to end", interval=interval)
        return run

    def task_log_dir(self, run: RunObservation, task_id: str) -> pathlib.Path:
        return self.home / "logs" / f"dag_id={run.dag_id}" / f"run_id={run.run_id}" / f"task_id={task_id}"

    def ti_id(self, run: RunObservation, task_id: str) -> str:
        rows = self.query(
            "SELECT id FROM task_instance WHERE dag_id = ? AND run_id = ? AND task_id = ? AND map_index = -1",
            (run.dag_id, run.run_id, task_id),
        )
        return str(rows[0][0])

    def task_reschedules(self, run: RunObservation, task_id: str) -> int:
        rows = self.query("SELECT count(*) FROM task_reschedule WHERE ti_id = ?", (self.ti_id(run, task_id),))
        return int(rows[0][0])

    def xcom(self, run: RunObservation, task_id: str, key: str = "return_value") -> Any:
        rows = self.query(
            'SELECT value FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = ? AND "key" = ? AND map_index = -1',
            (run.dag_id, run.run_id, task_id, key),
        )
        if not rows:
            return None
        value = rows[0][0]
        return json.loads(value) if isinstance(value, str | bytes) else value
