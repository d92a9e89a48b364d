"""
Nightly backup check: did every protected item back up recently, and did any backup fail?

Runs every morning. ``check`` lists the vault's protected items and the backup jobs of the last ``lookback_hours``;
``report`` writes a readable report, hands it to ``send_report`` (swap for Slack, Teams or e-mail) and fails the run
(so on-call is paged by the failure callback) when a backup failed or an item's last backup is older than
``max_age_hours``. Jobs that completed with warnings are reported but do not fail the check.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.providers.common.compat.sdk import DAG, AirflowFailException, task

from airflow_backup_provider.hooks.backup import AzureBackupHook
from airflow_backup_provider.notifications.backup import BackupSummaryNotifier
from airflow_backup_provider.protocol import BackupJobStatus

log = logging.getLogger(__name__)


def send_report(message: str) -> None:
    """Where the report goes. Replace with e.g. ``SlackNotifier(text=message).notify({})``."""
    log.info("Nightly backup report sent:\n%s", message)


with DAG(
    dag_id="azure_backup_nightly_check",
    description="Every morning: flag failed backups and items without a recent backup.",
    schedule="0 6 * * *",
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    tags=["azure", "backup", "example"],
    params={"lookback_hours": 24, "max_age_hours": 26},
    default_args={
        "retries": 2,
        "retry_delay": timedelta(minutes=5),
        "on_failure_callback": BackupSummaryNotifier(summary_task_id=None, title="Nightly Azure Backup check FAILED"),
    },
) as dag:

    @task
    def check(params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Collect failed/warning jobs of the lookback window and items whose last backup is too old."""
        params = params or {}
        now = datetime.now(timezone.utc)
        hook = AzureBackupHook()
        jobs = hook.list_jobs(
            operation="Backup", start_time=now - timedelta(hours=float(params["lookback_hours"])), end_time=now
        )
        max_age = timedelta(hours=float(params["max_age_hours"]))
        items = hook.list_protected_items()
        return {
            "checked_at": now.isoformat(),
            "items": len(items),
            "jobs": len(jobs),
            "failed": [
                {"job_id": j.job_id, "item": j.entity_friendly_name, "status": j.status, "errors": j.describe_errors()}
                for j in jobs
                if j.status in BackupJobStatus.FAILURE_STATUSES
            ],
            "warnings": [
                {"job_id": j.job_id, "item": j.entity_friendly_name, "errors": j.describe_errors()}
                for j in jobs
                if j.status == BackupJobStatus.COMPLETED_WITH_WARNINGS
            ],
            "stale": [
                {
                    "item": i.friendly_name or i.protected_item_name,
                    "last_backup_time": i.last_backup_time.isoformat() if i.last_backup_time else None,
                    "last_backup_status": i.last_backup_status,
                }
                for i in items
                if i.last_backup_time is None or now - i.last_backup_time > max_age
            ],
        }

    @task
    def report(result: dict[str, Any]) -> str:
        lines = [
            f"Azure Backup nightly check at {result['checked_at']}: "
            f"{result['items']} items, {result['jobs']} backup jobs"
        ]
        lines += [f"FAILED {f['item']} job {f['job_id']} ({f['status']}): {f['errors']}" for f in result["failed"]]
        lines += [f"STALE {s['item']}: last backup {s['last_backup_time'] or 'never'}" for s in result["stale"]]
        lines += [f"warning {w['item']} job {w['job_id']}: {w['errors']}" for w in result["warnings"]]
        if not result["failed"] and not result["stale"]:
            lines.append("all items backed up recently; no failed backups")
        message = "\n".join(lines)
        send_report(message)
        if result["failed"] or result["stale"]:
            raise AirflowFailException(message)  # retrying does not change a failed backup
        return message

    report(check())
