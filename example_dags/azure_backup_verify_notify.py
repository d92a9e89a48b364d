"""
Backup → verify → notify with Azure Backup.

1. ``trigger_backup`` (:class:`TriggerBackupOperator`) starts an on-demand backup; the job id goes to XCom. A retry
   attaches to the running job instead of starting a second backup.
2. ``wait_for_backup`` (:class:`BackupJobSensor`) waits in reschedule mode (no worker slot between pokes), or in the
   triggerer for the ``_deferrable`` variant.
3. ``verify`` (:class:`VerifyBackupOperator`) checks the job completed, a recovery point newer than the job start
   exists, the item is healthy and its newest point is at most ``max_recovery_point_age_hours`` old. A passed
   verification emits the item's asset event (see ``azure_backup_asset_consumer``).
4. ``notify`` renders the verification report (:class:`BackupReportNotifier`) and posts it to the webhook of the
   ``http`` connection ``AZURE_BACKUP_EXAMPLE_WEBHOOK_CONN_ID`` names (Teams / Slack incoming webhook), else writes
   it to the task log. Any failed task reports through the same notifier (its report, or at least the job id).

The item defaults to the emulator's VM; point the ``azure_backup_default`` connection at a real subscription and
trigger with ``--conf '{"container_name": "...", "protected_item_name": "..."}'`` to back up a real one.

Environment: ``AZURE_BACKUP_EXAMPLE_POKE_INTERVAL`` — seconds between sensor pokes (default 60, as Microsoft's own
waiters; the tests and the demo set 1); ``AZURE_BACKUP_EXAMPLE_WEBHOOK_CONN_ID`` — optional webhook connection id.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from airflow_backup_provider.notifications.backup import BackupReportNotifier
from airflow_backup_provider.operators.backup import TriggerBackupOperator
from airflow_backup_provider.operators.verify import VerifyBackupOperator
from airflow_backup_provider.sensors.backup import BackupJobSensor

# Defaults: the emulator's seeded VM (python -m airflow_backup_provider.emulator). Override per run with params.
DEFAULT_CONTAINER = "IaasVMContainer;iaasvmcontainerv2;rg-app;vm-app-01"
DEFAULT_ITEM = "VM;iaasvmcontainerv2;rg-app;vm-app-01"
POKE_INTERVAL = float(os.environ.get("AZURE_BACKUP_EXAMPLE_POKE_INTERVAL", "60"))
WEBHOOK_CONN_ID = os.environ.get("AZURE_BACKUP_EXAMPLE_WEBHOOK_CONN_ID") or None


def build_dag(dag_id: str, *, deferrable: bool) -> DAG:
    with DAG(
        dag_id=dag_id,
        description="Trigger an Azure Backup, wait for it, verify the recovery point, notify.",
        schedule=None,
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
        tags=["azure", "backup", "example"],
        params={"container_name": DEFAULT_CONTAINER, "protected_item_name": DEFAULT_ITEM},
        default_args={
            # The failing task's own report (verification checks), else the job id and the error.
            "on_failure_callback": BackupReportNotifier(
                "{{ ti.task_id }}", webhook_conn_id=WEBHOOK_CONN_ID, title="Azure Backup FAILED"
            ),
        },
    ) as dag:
        trigger_backup = TriggerBackupOperator(
            task_id="trigger_backup",
            container_name="{{ params.container_name }}",
            protected_item_name="{{ params.protected_item_name }}",
            retries=2,
            retry_delay=timedelta(seconds=10),
        )
        wait_for_backup = BackupJobSensor(
            task_id="wait_for_backup",
            job_id="{{ ti.xcom_pull(task_ids='trigger_backup') }}",
            poke_interval=POKE_INTERVAL,
            timeout=timedelta(hours=6).total_seconds(),
            deferrable=deferrable,
        )
        verify = VerifyBackupOperator(
            task_id="verify",
            job_id="{{ ti.xcom_pull(task_ids='trigger_backup') }}",
            container_name="{{ params.container_name }}",
            protected_item_name="{{ params.protected_item_name }}",
            max_recovery_point_age=timedelta(hours=6),
        )

        @task
        def notify(**context: Any) -> dict[str, Any]:
            notifier = BackupReportNotifier("verify", webhook_conn_id=WEBHOOK_CONN_ID)
            notifier.notify(context)
            return notifier.sent[-1]

        trigger_backup >> wait_for_backup >> verify >> notify()
    return dag


azure_backup_verify_notify = build_dag("azure_backup_verify_notify", deferrable=False)
azure_backup_verify_notify_deferrable = build_dag("azure_backup_verify_notify_deferrable", deferrable=True)
