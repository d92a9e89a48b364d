"""Pure verification checks (``airflow_backup_provider.core.verification``) on spec-shaped bodies."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_backup_provider.core import verification as v
from airflow_backup_provider.exceptions import AzureBackupConfigError
from airflow_backup_provider.protocol import (
    ProtectedItem,
    RecoveryPoint,
    parse_job,
    parse_protected_item,
    parse_recovery_point,
)
from tests.conftest import EXAMPLES_DIR

NOW = datetime(2026, 12, 1, 6, 0, tzinfo=timezone.utc)


def example_body(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((EXAMPLES_DIR / name).read_text())["responses"]["200"]["body"]
    return body


def vm_item(**props: Any) -> ProtectedItem:
    """The spec's ClassicCompute_ProtectedItem_Get example with some properties replaced (None removes one)."""
    body = copy.deepcopy(example_body("ClassicCompute_ProtectedItem_Get.json"))
    for key, value in props.items():
        if value is None:
            body["properties"].pop(key, None)
        else:
            body["properties"][key] = value
    return parse_protected_item(body)


def workload_item(**props: Any) -> ProtectedItem:
    """A SQL database item shaped like AzureVmWorkloadSQLDatabaseProtectedItem (LastBackupStatus enum)."""
    properties: dict[str, Any] = {
        "protectedItemType": "AzureVmWorkloadSQLDatabase",
        "backupManagementType": "AzureWorkload",
        "workloadType": "SQLDataBase",
        "friendlyName": "salesdb",
        "protectionState": "Protected",
        "protectionStatus": "Healthy",
        "lastBackupStatus": "Healthy",
        "lastBackupTime": "2026-11-30T22:30:00Z",
        "lastRecoveryPoint": "2026-11-30T22:30:00Z",
        "protectedItemHealthStatus": "Healthy",
    }
    properties.update(props)
    return parse_protected_item(
        {
            "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v/backupFabrics/"
            "Azure/protectionContainers/VMAppContainer;Compute;rg-sql;vm-sql-01/protectedItems/"
            "SQLDataBase;mssqlserver;salesdb",
            "name": "SQLDataBase;mssqlserver;salesdb",
            "properties": {k: val for k, val in properties.items() if val is not None},
        }
    )


def share_item(**props: Any) -> ProtectedItem:
    properties: dict[str, Any] = {
        "protectedItemType": "AzureFileShareProtectedItem",
        "backupManagementType": "AzureStorage",
        "workloadType": "AzureFileShare",
        "friendlyName": "share-reports",
        "protectionState": "Protected",
        "lastBackupStatus": "Healthy",
        "lastBackupTime": "2026-11-30T22:30:00Z",
    }
    properties.update(props)
    return parse_protected_item(
        {
            "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v/backupFabrics/"
            "Azure/protectionContainers/StorageContainer;Storage;rg-data;stdata01/protectedItems/"
            "AzureFileShare;share-reports",
            "name": "AzureFileShare;share-reports",
            "properties": properties,
        }
    )


def job(status: str = "Completed", operation: str = "Backup", start: str = "2026-12-01T05:00:00Z") -> Any:
    body = copy.deepcopy(example_body("GetJobDetails.json"))
    body["properties"].update({"status": status, "operation": operation, "startTime": start})
    if status == "Failed":
        body["properties"]["errorDetails"] = [{"errorCode": 400002, "errorString": "VM agent unreachable"}]
    return parse_job(body)


def point(rp_id: str, when: str) -> RecoveryPoint:
    body = copy.deepcopy(example_body("RecoveryPoints_List.json")["value"][0])
    body["name"] = rp_id
    body["properties"]["recoveryPointTime"] = when
    return parse_recovery_point(body)


# -- item_healthy ------------------------------------------------------------------------------------------------


def test_spec_example_vm_item_is_healthy() -> None:
    item = vm_item()
    assert v.item_kind(item) == "vm"
    assert v.item_health_problems(item) == []
    check = v.check_item_healthy(item)
    assert check.ok and check.name == "item_healthy" and "Protected" in check.detail


def test_never_backed_up_sentinel_fails_with_a_clear_detail() -> None:
    # A freshly protected VM (docs): IRPending, empty lastBackupStatus, lastBackupTime 2001-01-01.
    item = vm_item(protectionState="IRPending", lastBackupStatus="", lastBackupTime="2001-01-01T00:00:00Z")
    assert item.last_backup_time is None  # the parser already drops the sentinel
    assert v.never_backed_up(item)
    check = v.check_item_healthy(item)
    assert not check.ok
    assert "never backed up (lastBackupTime 2001-01-01T00:00:00Z)" in check.detail
    assert "protectionState is IRPending" in check.detail


@pytest.mark.parametrize(
    ("item", "healthy"),
    [
        # IaaS VM: lastBackupStatus is a job status string.
        (vm_item(lastBackupStatus="Completed"), True),
        (vm_item(lastBackupStatus="CompletedWithWarnings"), True),
        (vm_item(lastBackupStatus="Failed"), False),
        # Workload: the LastBackupStatus enum; "Completed" is not one of its values.
        (workload_item(lastBackupStatus="Healthy"), True),
        (workload_item(lastBackupStatus="Unhealthy"), False),
        (workload_item(lastBackupStatus="IRPending"), False),
        (workload_item(lastBackupStatus="Invalid"), False),
        (workload_item(lastBackupStatus="Completed"), False),
        # File share: "Possible values: Healthy, Unhealthy".
        (share_item(lastBackupStatus="Healthy"), True),
        (share_item(lastBackupStatus="Unhealthy"), False),
    ],
)
def test_last_backup_status_depends_on_the_item_type(item: ProtectedItem, healthy: bool) -> None:
    assert v.check_item_healthy(item).ok is healthy


@pytest.mark.parametrize(
    ("item", "phrase"),
    [
        (vm_item(protectionState="ProtectionStopped"), "protectionState is ProtectionStopped"),
        (vm_item(protectionState="ProtectionError"), "protectionState is ProtectionError"),
        (vm_item(protectionState=None), "protectionState is (missing)"),
        (vm_item(healthStatus="ActionRequired"), "healthStatus is ActionRequired"),
        (workload_item(protectedItemHealthStatus="NotReachable"), "protectedItemHealthStatus is NotReachable"),
    ],
)
def test_item_problems_are_named(item: ProtectedItem, phrase: str) -> None:
    check = v.check_item_healthy(item)
    assert not check.ok and phrase in check.detail


def test_action_suggested_is_still_healthy() -> None:
    assert v.check_item_healthy(vm_item(healthStatus="ActionSuggested")).ok


def test_workload_error_detail_is_reported() -> None:
    item = workload_item(
        lastBackupStatus="Unhealthy",
        lastBackupErrorDetail={"code": "UserErrorSQLNoSysadminMembership", "message": "no sysadmin"},
    )
    assert "UserErrorSQLNoSysadminMembership: no sysadmin" in v.check_item_healthy(item).detail


def test_last_successful_backup_prefers_the_last_recovery_point() -> None:
    failed = workload_item(lastBackupStatus="Unhealthy", lastBackupTime="2026-12-01T01:00:00Z")
    assert v.last_successful_backup_time(failed) == datetime(2026, 11, 30, 22, 30, tzinfo=timezone.utc)
    no_point = workload_item(lastBackupStatus="Unhealthy", lastRecoveryPoint=None)
    assert v.last_successful_backup_time(no_point) is None
    good = share_item()
    assert v.last_successful_backup_time(good) == datetime(2026, 11, 30, 22, 30, tzinfo=timezone.utc)


# -- job_succeeded -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "allow", "ok", "phrase"),
    [
        ("Completed", True, True, "ended Completed"),
        ("CompletedWithWarnings", True, True, "ended CompletedWithWarnings"),
        ("CompletedWithWarnings", False, False, "warnings are not allowed"),
        ("Failed", True, False, "ended Failed: error 400002: VM agent unreachable"),
        ("Cancelled", True, False, "ended Cancelled"),
        ("InProgress", True, False, "has not finished: it is InProgress"),
    ],
)
def test_job_succeeded(status: str, allow: bool, ok: bool, phrase: str) -> None:
    check = v.check_job_succeeded(job(status), allow_warnings=allow)
    assert check.name == "job_succeeded" and check.ok is ok and phrase in check.detail


def test_a_restore_job_is_not_a_backup() -> None:
    check = v.check_job_succeeded(job(operation="Restore"), allow_warnings=True)
    assert not check.ok and "is a Restore job, not a backup" in check.detail


# -- recovery points ---------------------------------------------------------------------------------------------


def test_recovery_point_at_or_after_the_job_start() -> None:
    started = datetime(2026, 12, 1, 5, 0, tzinfo=timezone.utc)
    points = [point("1", "2026-11-30T22:30:00Z"), point("2", "2026-12-01T05:00:00Z"), point("3", "2026-12-01T05:20Z")]
    check, newest = v.check_recovery_point_exists(points, started, "vm")
    assert check.ok and newest is not None and newest.recovery_point_id == "3"
    assert "(2 since the job start)" in check.detail


def test_no_recovery_point_since_the_job_start_names_the_newest_older_one() -> None:
    started = datetime(2026, 12, 1, 5, 0, tzinfo=timezone.utc)
    check, newest = v.check_recovery_point_exists([point("1", "2026-11-30T22:30:00Z")], started, "vm")
    assert not check.ok and newest is None
    assert "no recovery point of vm at or after the job start 2026-12-01T05:00:00+00:00" in check.detail
    assert "the newest is 1 at 2026-11-30T22:30:00+00:00" in check.detail
    assert not v.check_recovery_point_exists([], None, "vm")[0].ok


def test_recovery_point_recent() -> None:
    points = [point("1", "2026-11-30T22:30:00Z")]
    assert v.check_recovery_point_recent(points, timedelta(hours=8), NOW, "vm").ok
    stale = v.check_recovery_point_recent(points, timedelta(hours=2), NOW, "vm")
    assert not stale.ok and "is 7h30m old (limit 2h00m)" in stale.detail
    assert not v.check_recovery_point_recent([], timedelta(hours=2), NOW, "vm").ok


# -- report ------------------------------------------------------------------------------------------------------


def test_report_and_failure_message_list_every_failed_check() -> None:
    checks = [
        v.check_job_succeeded(job("Failed"), allow_warnings=True),
        v.check_recovery_point_exists([], datetime(2026, 12, 1, 5, tzinfo=timezone.utc), "vm")[0],
        v.check_item_healthy(vm_item()),
    ]
    report = v.build_verification_report(job=job("Failed"), item_name="vm", checks=checks, recovery_point=None)
    assert report["ok"] is False and report["status"] == "Failed" and report["recovery_point_id"] is None
    assert [c["name"] for c in report["checks"]] == ["job_succeeded", "recovery_point_exists", "item_healthy"]
    json.dumps(report)
    message = v.verification_failure_message(report)
    assert "failed 2 check(s)" in message
    assert "job_succeeded: job " in message and "recovery_point_exists: no recovery point" in message
    assert "item_healthy" not in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [(timedelta(hours=2), timedelta(hours=2)), (90, timedelta(seconds=90)), ("1.5", timedelta(seconds=1.5))],
)
def test_coerce_timedelta(value: Any, expected: timedelta) -> None:
    assert v.coerce_timedelta("f", value, unit=timedelta(seconds=1)) == expected


@pytest.mark.parametrize("value", [0, -1, "soon", True, [1], float("nan")])
def test_coerce_timedelta_rejects_bad_values_naming_the_field(value: Any) -> None:
    with pytest.raises(AzureBackupConfigError, match=r"^max_age="):
        v.coerce_timedelta("max_age", value, unit=timedelta(hours=1))
