"""
Run when a protected item was backed up: a DAG scheduled on the item's Azure Backup asset.

``BackupJobSensor`` (and ``TriggerBackupOperator(wait_for_completion=True)``) after a successful backup job, and
``VerifyBackupOperator`` after a passed verification, emit an asset event (a dataset event on Airflow 2.11) for
``azure-backup://{subscription}/{resource_group}/{vault}/{protected_item_name}`` — see
:mod:`airflow_backup_provider.assets`. This DAG runs after each such event for the emulator's VM (for example after
``azure_backup_verify_notify``) and logs which job produced it; replace the task with the work that needs a fresh
backup first (a risky migration, a data export...).

Environment: ``AZURE_BACKUP_SUBSCRIPTION_ID`` (default: the emulator's subscription).
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from airflow_backup_provider.assets import backup_asset

log = logging.getLogger(__name__)

SUBSCRIPTION_ID = os.environ.get("AZURE_BACKUP_SUBSCRIPTION_ID", "00000000-0000-0000-0000-0000000000aa")
VM_BACKED_UP = backup_asset(SUBSCRIPTION_ID, "rg-backup-demo", "vault-demo", "VM;iaasvmcontainerv2;rg-app;vm-app-01")

with DAG(
    dag_id="azure_backup_asset_consumer",
    description="Runs after every successful backup of the VM.",
    schedule=[VM_BACKED_UP],
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    tags=["azure", "backup", "example"],
) as dag:

    @task
    def after_backup(**context: Any) -> list[str]:
        """The backup jobs whose success triggered this run (from the asset events' extra)."""
        events = context.get("triggering_asset_events") or context.get("triggering_dataset_events") or {}
        job_ids = [str(e.extra.get("job_id")) for evs in events.values() for e in evs]
        log.info("Backed up by job(s) %s", ", ".join(job_ids) or "(none)")
        return job_ids

    after_backup()
