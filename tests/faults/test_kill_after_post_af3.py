"""Issue 6 §1 on Airflow 3.3's real scheduler stack: a task SIGKILLed after Azure accepted its backup POST.

One stack (api-server, scheduler, dag-processor, triggerer, LocalExecutor, SQLite; see :mod:`tests.e2e.stack`)
serves the module. In each test the scheduler itself notices the dead task and retries it:

- task runner killed: its supervisor (the LocalExecutor worker) reports the failure at once;
- task runner and supervisor killed together (worker death): nobody reports; the scheduler finds the task instance
  without heartbeat after ``[scheduler] task_instance_heartbeat_timeout`` (short here).

Afterwards the item has exactly one backup job, and the retry pushed it as ``job_id`` and owns it
(:mod:`tests.faults.scenario`).
"""

from __future__ import annotations

import importlib.metadata
import time
from collections.abc import Iterator

import pytest

from airflow_backup_provider.emulator import FILE_SHARE_ITEM, VM_ITEM, Emulator

from .dags.kill_after_post import FINISHED_DAG_ID, RUNNING_DAG_ID
from .scenario import kill_after_post
from .stacks import Airflow3FaultStack

pytestmark = [pytest.mark.e2e, pytest.mark.airflow3_only]

if int(importlib.metadata.version("apache-airflow").split(".")[0]) < 3:
    pytest.skip("the Airflow 3 scheduler stack needs Airflow 3", allow_module_level=True)

HEARTBEAT_TIMEOUT = 15  # seconds without a heartbeat before the scheduler fails (and retries) a running task


@pytest.fixture(scope="module")
def stack(
    azure_backup_emulator_session: Emulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Airflow3FaultStack]:
    env = {
        **azure_backup_emulator_session.client_env(),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
        # The 5 s default failed a task start now and then on the shared 2-core machine (api-server busy).
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
    }
    airflow_stack = Airflow3FaultStack(home=tmp_path_factory.mktemp("airflow-faults-home"), client_env=env)
    try:
        airflow_stack.start(dag_ids=(RUNNING_DAG_ID, FINISHED_DAG_ID))
        print(f"\n[faults] Airflow 3 stack up in {airflow_stack.timings['ready']:.1f} s", flush=True)
        yield airflow_stack
    finally:
        airflow_stack.stop()


def test_task_runner_killed_while_the_first_job_runs(stack: Airflow3FaultStack, fault_emulator: Emulator) -> None:
    """Operation held InProgress: the retry searches the item's jobs and finds the running one."""
    kill_after_post(stack, fault_emulator, RUNNING_DAG_ID, VM_ITEM, first_job_running=True, window="held_operation")


def test_task_runner_killed_and_the_first_job_finished(stack: Airflow3FaultStack, fault_emulator: Emulator) -> None:
    """Killed in the 202's Retry-After sleep: the retry reads the kept operation id."""
    kill_after_post(
        stack, fault_emulator, FINISHED_DAG_ID, FILE_SHARE_ITEM, first_job_running=False, window="retry_after"
    )


def test_worker_death_and_the_first_job_finished(stack: Airflow3FaultStack, fault_emulator: Emulator) -> None:
    """Operation held InProgress, no one reports the death: the search finds the finished job."""
    started = time.monotonic()
    kill_after_post(
        stack,
        fault_emulator,
        FINISHED_DAG_ID,
        FILE_SHARE_ITEM,
        first_job_running=False,
        window="held_operation",
        worker_death=True,
    )
    print(f"\n[faults] worker death: kill -> retried run done in {time.monotonic() - started:.0f} s", flush=True)
