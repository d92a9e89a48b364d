"""
Backup → verify → notify with Azure Backup.

1. ``trigger_backup`` triggers an on-demand backup of one protected item; the job id goes to XCom.
2. ``wait_for_backup`` waits for the job in reschedule mode (no worker slot held between pokes).
3. ``verify`` checks the job summary says Completed and that a recovery point newer than the job start exists.
4. ``notify`` writes a readable summary to the task log and hands it to ``send_summary`` — swap that function (or the
   ``BackupSummaryNotifier`` failure callback) for Slack, Teams or e-mail.

The item defaults to the emulator's VM; point the ``azure_backup_default`` connection at a real subscription and
trigger with ``--conf '{"container_name": "...", "protected_item_name": "..."}'`` to back up a real one.
Two DAGs come from this file: ``azure_backup_verify_notify`` (reschedule sensor) and
``azure_backup_verify_notify_deferrable`` (the sensor waits in the triggerer).
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from airflow_backup_provider.hooks.backup import AzureBackupHook
from airflow_backup_provider.notifications.backup import BackupSummaryNotifier, format_backup_summary
from airflow_backup_provider.operators.backup import TriggerBackupOperator
from airflow_backup_provider.protocol import BackupJobStatus, parse_datetime
from airflow_backup_provider.sensors.backup import BackupJobSensor

log = logging.getLogger(__name__)

# Defaults: the emulator's seeded VM (python -m airflow_backup_provider.emulator). Override per run with params.
DEFAULT_CONTAINER = "IaasVMContainer;iaasvmcontainerv2;rg-app;vm-app-01"
DEFAULT_ITEM = "VM;iaasvmcontainerv2;rg-app;vm-app-01"
# Microsoft's own waiters poll every 30-60 s; tests and the demo shorten it through the environment.
POKE_INTERVAL = float(os.environ.get("AZURE_BACKUP_EXAMPLE_POKE_INTERVAL", "60"))


def send_summary(message: str) -> None:
    """Where the summary goes. Replace with e.g. ``SlackNotifier(text=message).notify({})``."""
    log.info("Backup summary sent:\n%s", message)


def build_dag(dag_id: str, *, deferrable: bool) -> DAG:
    with DAG(
        dag_id=dag_id,
        description="Trigger an Azure Backup, wait for it, verify the recovery point, notify.",
        schedule=None,
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
        tags=["azure", "backup", "example"],
        params={"container_name": DEFAULT_CONTAINER, "protected_item_name": DEFAULT_ITEM},
        default_args={"on_failure_callback": BackupSummaryNotifier(title="Azure Backup FAILED")},
    ) as dag:
        trigger_backup = TriggerBackupOperator(
            task_id="trigger_backup",
            container_name="{{ params.container_name }}",
            protected_item_name="{{ params.protected_item_name }}",
            # A retry attaches to the running job instead of starting a second backup.
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

        @task
        def verify(summary: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any]:
            """The job completed and left a recovery point newer than its start."""
            if summary.get("status") not in BackupJobStatus.SUCCESS_STATUSES:
                raise ValueError(f"backup job {summary.get('job_id')} ended {summary.get('status')}")
            started = parse_datetime(summary.get("start_time"))
            if started is None:
                raise ValueError(f"backup job {summary.get('job_id')} has no start time")
            params = params or {}
            points = AzureBackupHook().list_recovery_points(
                params["container_name"], params["protected_item_name"], start_time=started - timedelta(hours=1)
            )
            newer = [p for p in points if p.recovery_point_time and p.recovery_point_time >= started]
            if not newer:
                raise ValueError(
                    f"no recovery point newer than the job start {started.isoformat()} "
                    f"for {params['protected_item_name']} ({len(points)} older ones)"
                )
            latest = max(newer, key=lambda p: p.recovery_point_time or started)
            return {
                "recovery_point_id": latest.recovery_point_id,
                "recovery_point_time": latest.recovery_point_time.isoformat() if latest.recovery_point_time else None,
                "recovery_points_since_start": len(newer),
            }

        @task
        def notify(summary: dict[str, Any], verification: dict[str, Any]) -> str:
            message = format_backup_summary(
                summary,
                extra=f"verified: recovery point {verification['recovery_point_id']} "
                f"at {verification['recovery_point_time']}",
            )
            send_summary(message)
            return message

        summary = wait_for_backup.output
        trigger_backup >> wait_for_backup
        notify(summary, verify(summary))
    return dag


azure_backup_verify_notify = build_dag("azure_backup_verify_notify", deferrable=False)
azure_backup_verify_notify_deferrable = build_dag("azure_backup_verify_notify_deferrable", deferrable=True)
