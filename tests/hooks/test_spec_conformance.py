"""Every request the hook sends matches a path template and method of the official spec (tests/spec/bms.json)."""

from __future__ import annotations

import json
import re
from typing import Any

from airflow_backup_provider.emulator import FILE_SHARE_ITEM, VM_ITEM, Emulator
from airflow_backup_provider.hooks.backup import AzureBackupHook
from airflow_backup_provider.protocol import RetryPolicy
from tests.conftest import SPEC_DIR

# Vaults_Get lives in the separate Microsoft.RecoveryServices vault spec, not in bms.json.
VAULT_TEMPLATE = (
    "GET",
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/"
    "Microsoft.RecoveryServices/vaults/{vaultName}",
)


def spec_operations() -> list[tuple[str, re.Pattern[str], str]]:
    spec = json.loads((SPEC_DIR / "bms.json").read_text())
    ops = []
    for template, methods in [*spec["paths"].items(), (VAULT_TEMPLATE[1], {"get": {"operationId": "Vaults_Get"}})]:
        pattern = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$", re.IGNORECASE)
        for method, op in methods.items():
            if isinstance(op, dict) and "operationId" in op:
                ops.append((method.upper(), pattern, op["operationId"]))
    return ops


def test_every_hook_request_is_in_the_spec(emulator: Emulator) -> None:
    hook = AzureBackupHook(retry_policy=RetryPolicy(backoff_base=0.05), operation_poll_interval=0.05)
    emulator.configure(job_page_size=1)
    hook.get_vault()
    job_id = hook.trigger_backup(VM_ITEM.container_name, VM_ITEM.protected_item_name).job_id
    hook.get_job(job_id)
    hook.list_jobs(status="InProgress", start_time="2026-01-01T00:00:00Z")
    hook.cancel_job(job_id)
    hook.get_protected_item(FILE_SHARE_ITEM.container_name, FILE_SHARE_ITEM.protected_item_name)
    hook.list_protected_items(backup_management_type="AzureIaasVM", item_type="VM")
    points = hook.list_recovery_points(VM_ITEM.container_name, VM_ITEM.protected_item_name, start_time="2020-01-01")
    hook.trigger_restore(
        VM_ITEM.container_name,
        VM_ITEM.protected_item_name,
        points[0].recovery_point_id,
        {"objectType": "IaasVMRestoreRequest", "recoveryType": "RestoreDisks"},
    )
    hook.find_in_progress_backup(VM_ITEM.container_name, VM_ITEM.protected_item_name)

    ops = spec_operations()
    seen: dict[str, int] = {}
    sent = [r for r in emulator.requests if "/subscriptions/" in r.path.lower()]
    assert len(sent) > 10
    for request in sent:
        matches = [
            op_id for method, pattern, op_id in ops if method == request.method and pattern.match(request.raw_path)
        ]
        assert matches, f"{request.method} {request.raw_path} matches no operation of bms.json"
        assert "api-version" in request.query
        for op_id in matches:
            seen[op_id] = seen.get(op_id, 0) + 1
    expected: set[Any] = {
        "Vaults_Get",
        "Backups_Trigger",
        "ProtectedItemOperationStatuses_Get",
        "JobDetails_Get",
        "BackupJobs_List",
        "JobCancellations_Trigger",
        "JobOperationResults_Get",
        "ProtectedItems_Get",
        "BackupProtectedItems_List",
        "RecoveryPoints_List",
        "Restores_Trigger",
    }
    assert expected <= set(seen), expected - set(seen)
