"""
Restore drill: a backup nobody restored is a hope, not a backup.

Every Sunday at 04:00 UTC:

1. ``restore`` (:class:`TriggerRestoreOperator`) restores the item's **latest** recovery point to a staging target —
   here the VM's disks to a staging storage account (``RestoreDisks``); for a file share use an
   ``AzureFileShareRestoreRequest`` with ``recoveryType: AlternateLocation`` and a staging share. A retry attaches to
   the restore job it started instead of restoring twice.
2. ``wait_for_restore`` (:class:`BackupJobSensor`, reschedule mode) waits for the restore job; warnings fail it.
3. ``verify_restore`` checks the job is a restore of this item that ended ``Completed``.
4. ``notify`` renders the restore job summary (:class:`BackupReportNotifier`) to the webhook of
   ``AZURE_BACKUP_EXAMPLE_WEBHOOK_CONN_ID``, else the task log; a failed step reports through the same notifier.

Defaults point at the emulator's VM; set the params (``--conf``) for a real item and staging account. Delete the
restored disks after the drill (a storage lifecycle rule on the staging account does it).
Environment: ``AZURE_BACKUP_EXAMPLE_POKE_INTERVAL`` (seconds between pokes, default 60).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from airflow_backup_provider.notifications.backup import BackupReportNotifier
from airflow_backup_provider.operators.restore import TriggerRestoreOperator
from airflow_backup_provider.sensors.backup import BackupJobSensor

SUBSCRIPTION_ID = os.environ.get("AZURE_BACKUP_SUBSCRIPTION_ID", "00000000-0000-0000-0000-0000000000aa")
POKE_INTERVAL = float(os.environ.get("AZURE_BACKUP_EXAMPLE_POKE_INTERVAL", "60"))
WEBHOOK_CONN_ID = os.environ.get("AZURE_BACKUP_EXAMPLE_WEBHOOK_CONN_ID") or None

with DAG(
    dag_id="azure_backup_restore_drill",
    description="Weekly: restore the latest recovery point to staging, wait, verify, notify.",
    schedule="0 4 * * 0",
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    tags=["azure", "backup", "example"],
    params={
        "container_name": "IaasVMContainer;iaasvmcontainerv2;rg-app;vm-app-01",
        "protected_item_name": "VM;iaasvmcontainerv2;rg-app;vm-app-01",
        "source_resource_id": f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/rg-app/providers/"
        "Microsoft.Compute/virtualMachines/vm-app-01",
        "staging_storage_account_id": f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/rg-restore-staging/"
        "providers/Microsoft.Storage/storageAccounts/strestorestaging",
        "region": "westeurope",
    },
    default_args={
        "on_failure_callback": BackupReportNotifier(
            "{{ ti.task_id }}", webhook_conn_id=WEBHOOK_CONN_ID, title="Azure Backup restore drill FAILED"
        ),
    },
) as dag:
    restore = TriggerRestoreOperator(
        task_id="restore",
        container_name="{{ params.container_name }}",
        protected_item_name="{{ params.protected_item_name }}",
        recovery_point_id="latest",
        restore_request={
            "objectType": "IaasVMRestoreRequest",
            "recoveryType": "RestoreDisks",
            "sourceResourceId": "{{ params.source_resource_id }}",
            "storageAccountId": "{{ params.staging_storage_account_id }}",
            "region": "{{ params.region }}",
            "createNewCloudService": False,
            "originalStorageAccountOption": False,
            "encryptionDetails": {"encryptionEnabled": False},
        },
        retries=2,
        retry_delay=timedelta(seconds=30),
    )
    wait_for_restore = BackupJobSensor(
        task_id="wait_for_restore",
        job_id="{{ ti.xcom_pull(task_ids='restore') }}",
        poke_interval=POKE_INTERVAL,
        timeout=timedelta(hours=12).total_seconds(),
        fail_on_warnings=True,
    )

    @task
    def verify_restore(summary: dict[str, Any], **context: Any) -> dict[str, Any]:
        """The waited-on job is a restore of this item that completed."""
        if summary.get("operation") != "Restore" or summary.get("status") != "Completed":
            raise ValueError(
                f"job {summary.get('job_id')} is {summary.get('operation')} {summary.get('status')}, "
                "not a completed restore"
            )
        point = context["ti"].xcom_pull(task_ids="restore", key="recovery_point_id")
        return {**summary, "recovery_point_id": str(point)}  # Airflow 3 reads numeric strings back as numbers

    @task
    def notify(**context: Any) -> dict[str, Any]:
        notifier = BackupReportNotifier(
            "verify_restore", webhook_conn_id=WEBHOOK_CONN_ID, title="Azure Backup restore drill"
        )
        notifier.notify(context)
        return notifier.sent[-1]

    checked = verify_restore(wait_for_restore.output)
    restore >> wait_for_restore
    checked >> notify()
