"""Real Airflow schedulers for the fault tests, with the one thing the e2e stack lacks: finding the task processes.

- :class:`Airflow3FaultStack`: the e2e :class:`~tests.e2e.stack.AirflowStack` (api-server, scheduler, dag-processor,
  triggerer, LocalExecutor, SQLite) on ``tests/faults/dags``. A LocalExecutor worker is the task's *supervisor*
  (title ``airflow worker -- LocalExecutor: ...``); it forks the task runner (title ``airflow worker -- <ti id>``).
- :class:`Airflow2Stack`: an Airflow 2.11 scheduler with the SequentialExecutor on SQLite. The executor runs
  ``airflow tasks run --local`` (the LocalTaskJob, the *supervisor*), which forks the ``--raw`` task runner (title
  ``airflow task runner: <dag> <task> <run id> <job id>``). DAG runs are created with ``airflow dags trigger``.

Neither imports Airflow: each runs the Airflow of the interpreter running the tests.
"""

from __future__ import annotations

import os
import pathlib
import sqlite3
import subprocess
import sys
import time
import uuid

from tests.e2e.stack import AIRFLOW, REPO, AirflowStack, RunObservation, StackError, tail

from .killing import ProcessInfo, processes

FAULT_DAGS_FOLDER = REPO / "tests" / "faults" / "dags"


def _with_parent(child: ProcessInfo | None) -> tuple[ProcessInfo, ProcessInfo] | None:
    if child is None:
        return None
    parent = next((p for p in processes() if p.pid == child.ppid), None)
    return None if parent is None else (child, parent)


class Airflow3FaultStack(AirflowStack):
    """The Airflow 3 e2e stack on ``tests/faults/dags``; ``client_env`` may add settings (e.g. timeouts)."""

    has_task_state_store = True

    def env(self) -> dict[str, str]:
        env = super().env()
        env["AIRFLOW__CORE__DAGS_FOLDER"] = str(FAULT_DAGS_FOLDER)
        env.update(self.client_env)
        return env

    def task_processes(self, run: RunObservation, task_id: str) -> tuple[ProcessInfo, ProcessInfo] | None:
        """The current try's task runner and its supervisor (the LocalExecutor worker), or None if not running."""
        # The metadata DB may keep the uuid as 32 hex digits; the title spells it with hyphens.
        title = f"airflow worker -- {uuid.UUID(self.ti_id(run, task_id))}"
        child = next((p for p in processes() if p.cmdline == title), None)
        found = _with_parent(child)
        if found is not None and "LocalExecutor" not in found[1].cmdline:
            raise AssertionError(f"the parent of task runner {child} is no LocalExecutor worker: {found[1]}")
        return found

    def try_number(self, run: RunObservation, task_id: str) -> int:
        rows = self.query(
            "SELECT try_number FROM task_instance WHERE dag_id = ? AND run_id = ? AND task_id = ? AND map_index = -1",
            (run.dag_id, run.run_id, task_id),
        )
        return int(rows[0][0])

    def task_log(self, run: RunObservation, task_id: str, attempt: int) -> str:
        paths = sorted(self.task_log_dir(run, task_id).glob(f"attempt={attempt}.log*"))
        return "\n".join(p.read_text(errors="replace") for p in paths)


class Airflow2Stack(Airflow3FaultStack):
    """One Airflow 2.11 ``airflow scheduler`` (SequentialExecutor, SQLite; it parses the DAGs itself)."""

    has_task_state_store = False

    def env(self) -> dict[str, str]:
        env = super().env()
        env = {k: v for k, v in env.items() if not k.startswith(("AIRFLOW__API", "AIRFLOW__DAG_PROCESSOR"))}
        env.pop("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", None)
        env.pop("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", None)
        # The executor runs each try as an ``airflow tasks run`` command: the interpreter's own ``airflow`` first.
        bin_dir = str(pathlib.Path(sys.executable).parent)
        env["PATH"] = os.pathsep.join(filter(None, [bin_dir, env.get("PATH")]))
        env.update(
            {
                "AIRFLOW__CORE__EXECUTOR": "SequentialExecutor",  # Airflow 2 refuses LocalExecutor on SQLite
                "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "False",
                **self.client_env,
            }
        )
        return env

    def start(self, timeout: float = 120.0, dag_ids: tuple[str, ...] = ()) -> None:
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
        out = self.log_path("scheduler").open("w")
        self._files.append(out)
        self.processes["scheduler"] = subprocess.Popen(
            [*AIRFLOW, "scheduler"],
            env=env,
            cwd=self.home,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # stop() signals the session and everything the scheduler forked
        )
        self.wait_until(
            lambda: all(self._dag_loaded(dag_id) for dag_id in dag_ids),
            timeout=timeout,
            what=f"DAGs {', '.join(dag_ids)} to be parsed and unpaused",
        )
        self.timings["ready"] = time.monotonic() - started

    def _dag_loaded(self, dag_id: str) -> bool:
        try:
            rows = self.query("SELECT is_paused FROM dag WHERE dag_id = ? AND is_active = 1", (dag_id,))
        except sqlite3.Error:  # the scheduler has not created the tables yet
            return False
        return bool(rows) and not rows[0][0]

    def trigger(self, dag_id: str) -> RunObservation:
        triggered_at = time.monotonic()
        run_id = f"kill_{uuid.uuid4().hex[:12]}"
        result = subprocess.run(
            [*AIRFLOW, "dags", "trigger", dag_id, "--run-id", run_id],
            env=self.env(),
            cwd=self.home,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(f"airflow dags trigger {dag_id} exited {result.returncode}\n{result.stderr[-3000:]}")
        return RunObservation(dag_id=dag_id, run_id=run_id, triggered_at=triggered_at)

    def task_processes(self, run: RunObservation, task_id: str) -> tuple[ProcessInfo, ProcessInfo] | None:
        """The ``--raw`` task runner of the current try and its LocalTaskJob (``tasks run --local``)."""
        title = f"airflow task runner: {run.dag_id} {task_id} {run.run_id}"
        child = next((p for p in processes() if p.cmdline.startswith(title)), None)
        found = _with_parent(child)
        if found is not None and "--local" not in found[1].cmdline:
            raise AssertionError(f"the parent of task runner {child} is no LocalTaskJob: {found[1]}")
        return found
