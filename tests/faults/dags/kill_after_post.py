"""DAGs for the kill-after-POST fault tests (``tests/faults``): one task that triggers a backup, retried.

The tests SIGKILL the task's process right after the emulator accepted its backup POST and before the task could
learn the job id, then let the scheduler retry the task. Each DAG backs up its own seeded item:

- ``fault_kill_after_post_running``: the VM; the tests make its job long, so it still runs when the retry starts.
- ``fault_kill_after_post_finished``: the file share; its job is short and ``retry_delay`` longer, so the job has
  finished when the retry starts.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.providers.common.compat.sdk import DAG

from airflow_backup_provider.emulator import FILE_SHARE_ITEM, VM_ITEM, SeededItem
from airflow_backup_provider.operators.backup import TriggerBackupOperator

RUNNING_DAG_ID = "fault_kill_after_post_running"
FINISHED_DAG_ID = "fault_kill_after_post_finished"
TASK_ID = "trigger_backup"
RETRY_DELAY_RUNNING = 2.0  # seconds; the VM job runs for minutes
RETRY_DELAY_FINISHED = 8.0  # seconds; longer than the file share job (tests/faults set it to a few seconds)


def build_dag(dag_id: str, item: SeededItem, retry_delay: float) -> DAG:
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
        tags=["tests", "faults"],
    ) as dag:
        TriggerBackupOperator(
            task_id=TASK_ID,
            container_name=item.container_name,
            protected_item_name=item.protected_item_name,
            # One retry runs after the kill; one more absorbs a try that fails on its own on a loaded machine (e.g.
            # an Execution API timeout at task start): the tests check the try after the killed one.
            retries=2,
            retry_delay=timedelta(seconds=retry_delay),
            # The operation poll interval: the first try is killed while it follows the (held open) operation.
            hook_params={"operation_poll_interval": 1.0},
        )
    return dag


fault_kill_after_post_running = build_dag(RUNNING_DAG_ID, VM_ITEM, RETRY_DELAY_RUNNING)
fault_kill_after_post_finished = build_dag(FINISHED_DAG_ID, FILE_SHARE_ITEM, RETRY_DELAY_FINISHED)
