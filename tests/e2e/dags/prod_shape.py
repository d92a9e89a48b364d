"""DAGs of the production-shape e2e test (tests/e2e/test_production_shape.py): trigger a backup, wait for it.

``prod_shape_reschedule`` waits with the reschedule sensor (a worker slot per poke), ``prod_shape_deferrable`` in a
triggerer. The item comes from the run's conf (``container_name``, ``protected_item_name``), so concurrent runs back
up different items. ``trigger_backup`` retries (a SIGKILLed worker's task is failed by the scheduler's heartbeat
timeout and retried on the other worker); the sensor does not, so a lost wait fails the run.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.providers.common.compat.sdk import DAG

from airflow_backup_provider.operators.backup import TriggerBackupOperator
from airflow_backup_provider.sensors.backup import BackupJobSensor

# Reschedule pokes are each a task start on a worker (seconds of CPU on this 2-core machine); the deferrable sensor's
# trigger polls in the triggerer. Both stay well above [workers] min_heartbeat_interval (apache/airflow #71172).
POKE_INTERVAL = {False: 10, True: 5}

for dag_id, deferrable in (("prod_shape_reschedule", False), ("prod_shape_deferrable", True)):
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
        max_active_runs=16,
        params={"container_name": "", "protected_item_name": ""},
        tags=["e2e"],
    ) as dag:
        trigger = TriggerBackupOperator(
            task_id="trigger_backup",
            container_name="{{ params.container_name }}",
            protected_item_name="{{ params.protected_item_name }}",
            # One retry for the killed worker; more for a heartbeat timeout on a starved 2-core machine (seen with
            # load from other processes: a healthy try failed after 20 s without heartbeat and was retried).
            retries=3,
            retry_delay=timedelta(seconds=2),
        )
        wait = BackupJobSensor(
            task_id="wait_for_backup",
            job_id="{{ ti.xcom_pull(task_ids='trigger_backup') }}",
            poke_interval=POKE_INTERVAL[deferrable],
            timeout=600,
            deferrable=deferrable,
            retries=0,
        )
        trigger >> wait
    globals()[dag_id] = dag
