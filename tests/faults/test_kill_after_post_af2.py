"""Issue 6 §1 on Airflow 2.11's real scheduler: a task SIGKILLed after Azure accepted its backup POST.

One ``airflow scheduler`` (SequentialExecutor, SQLite) serves the module. The executor runs each try as
``airflow tasks run --local`` (LocalTaskJob), which forks the ``--raw`` task runner; the tests SIGKILL that runner
and the task instance is failed (up for retry) at once; for a worker death the LocalTaskJob is killed with it, and the
scheduler finds the task instance without heartbeat after ``[scheduler] scheduler_zombie_task_threshold`` (short
here). After ``retry_delay`` the scheduler runs the retry.

Airflow 2.11 has no task state store (and clears XCom on retry): the retry relies on what the metadata DB knows of
the first try. Afterwards the item has exactly one backup job, and the retry pushed it as ``job_id`` and owns it
(:mod:`tests.faults.scenario`).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator

import pytest

from airflow_backup_provider.emulator import FILE_SHARE_ITEM, VM_ITEM, Emulator

from .dags.kill_after_post import FINISHED_DAG_ID, RUNNING_DAG_ID
from .scenario import kill_after_post
from .stacks import Airflow2Stack

if int(importlib.metadata.version("apache-airflow").split(".")[0]) >= 3:
    pytest.skip("the Airflow 2.11 scheduler tests run in the Airflow 2.11 venv", allow_module_level=True)

HEARTBEAT_TIMEOUT = 15  # seconds without a LocalTaskJob heartbeat before the scheduler fails (and retries) a task


@pytest.fixture(scope="module")
def stack(azure_backup_emulator_session: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Airflow2Stack]:
    env = {
        **azure_backup_emulator_session.client_env(),
        # A dead LocalTaskJob reports nothing: the scheduler finds its task instance by the missing heartbeat.
        "AIRFLOW__SCHEDULER__SCHEDULER_ZOMBIE_TASK_THRESHOLD": str(HEARTBEAT_TIMEOUT),
        "AIRFLOW__SCHEDULER__ZOMBIE_DETECTION_INTERVAL": "2",
    }
    airflow_stack = Airflow2Stack(home=tmp_path_factory.mktemp("airflow2-faults-home"), client_env=env)
    try:
        airflow_stack.start(dag_ids=(RUNNING_DAG_ID, FINISHED_DAG_ID))
        print(f"\n[faults] Airflow 2.11 scheduler up in {airflow_stack.timings['ready']:.1f} s", flush=True)
        yield airflow_stack
    finally:
        airflow_stack.stop()


def test_raw_task_runner_killed_while_the_first_job_runs(stack: Airflow2Stack, fault_emulator: Emulator) -> None:
    """Operation held InProgress: the retry searches the item's jobs and finds the running one."""
    kill_after_post(stack, fault_emulator, RUNNING_DAG_ID, VM_ITEM, first_job_running=True, window="held_operation")


def test_raw_task_runner_killed_and_the_first_job_finished(stack: Airflow2Stack, fault_emulator: Emulator) -> None:
    """Killed in the 202's Retry-After sleep: the retry searches (no store on 2.11)."""
    kill_after_post(
        stack, fault_emulator, FINISHED_DAG_ID, FILE_SHARE_ITEM, first_job_running=False, window="retry_after"
    )


def test_worker_death_and_the_first_job_finished(stack: Airflow2Stack, fault_emulator: Emulator) -> None:
    """Operation held InProgress, no one reports the death: the search finds the finished job."""
    kill_after_post(
        stack,
        fault_emulator,
        FINISHED_DAG_ID,
        FILE_SHARE_ITEM,
        first_job_running=False,
        window="held_operation",
        worker_death=True,
    )
