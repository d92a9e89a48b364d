"""
Nightly backup check: did every protected item back up recently, and did any backup fail?

Runs every morning at 06:00 UTC. ``check`` (:class:`BackupHealthCheckOperator`) reads every protected item of the
``vaults`` (default: the connection's vault) and the backup jobs of the last ``lookback_hours``, and sorts each
item into healthy / stale / failed / protection stopped / protection error. It fails — and only then notifies, via
:class:`BackupReportNotifier` (webhook of ``AZURE_BACKUP_EXAMPLE_WEBHOOK_CONN_ID``, else the task log) — when an
item's last successful backup is older than ``max_age_hours`` (the RPO), its latest backup failed, its protection is
stopped or broken, or a vault could not be read. Jobs that completed with warnings are reported, not failed.

Trigger with ``--conf '{"vaults": ["rg-a/vault-a", "rg-b/vault-b"], "max_age_hours": 30}'`` to check other vaults.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

from airflow.providers.common.compat.sdk import DAG

from airflow_backup_provider.notifications.backup import BackupReportNotifier
from airflow_backup_provider.operators.health import BackupHealthCheckOperator

WEBHOOK_CONN_ID = os.environ.get("AZURE_BACKUP_EXAMPLE_WEBHOOK_CONN_ID") or None

with DAG(
    dag_id="azure_backup_nightly_check",
    description="Every morning: flag failed backups, stale items and stopped protection.",
    schedule="0 6 * * *",
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    tags=["azure", "backup", "example"],
    params={"vaults": None, "lookback_hours": 24, "max_age_hours": 26},
    render_template_as_native_obj=True,  # params.vaults renders as a list, not its repr
) as dag:
    check = BackupHealthCheckOperator(
        task_id="check",
        vaults="{{ params.vaults }}",
        max_age="{{ params.max_age_hours }}",
        lookback="{{ params.lookback_hours }}",
        retries=0,  # an unhealthy fleet is not fixed by retrying
        on_failure_callback=BackupReportNotifier(
            "check", webhook_conn_id=WEBHOOK_CONN_ID, title="Nightly Azure Backup check FAILED"
        ),
    )
