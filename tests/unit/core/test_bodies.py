"""Backup request bodies (:mod:`airflow_backup_provider.core.api`)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import pytest

from airflow_backup_provider.core import (
    build_backup_request,
)
from airflow_backup_provider.exceptions import (
    AzureBackupConfigError,
)
from tests.unit.conftest import (
    NOW,
    UTC,
)

# --------------------------------------------------------------------------------------------------------------------
# 4. Backup request bodies
# --------------------------------------------------------------------------------------------------------------------

VM_CONTAINER = "IaasVMContainer;iaasvmcontainerv2;rg;vm"
AFS_CONTAINER = "StorageContainer;Storage;rg;account"
WL_CONTAINER = "VMAppContainer;Compute;rg;sqlvm"
EXPIRY_45 = "2024-06-15T12:30:15.123Z"
EXPIRY_30 = "2024-05-31T12:30:15.123Z"

BACKUP_REQUEST_CASES = [
    pytest.param({"container_name": VM_CONTAINER}, {"objectType": "IaasVMBackupRequest"}, id="vm"),
    pytest.param(
        {"container_name": "iaasvmcontainer;iaasvmcontainer;rg;vm"},
        {"objectType": "IaasVMBackupRequest"},
        id="vm-lower",
    ),
    pytest.param({"container_name": AFS_CONTAINER}, {"objectType": "AzureFileShareBackupRequest"}, id="afs"),
    pytest.param(
        {"container_name": "storagecontainer;storage;rg;a"},
        {"objectType": "AzureFileShareBackupRequest"},
        id="afs-lower",
    ),
    pytest.param(
        {"container_name": WL_CONTAINER},
        {"objectType": "AzureWorkloadBackupRequest", "backupType": "Full", "recoveryPointExpiryTimeInUTC": EXPIRY_45},
        id="workload-default-full-45-days",
    ),
    pytest.param(
        {"container_name": WL_CONTAINER, "backup_type": "CopyOnlyFull"},
        {
            "objectType": "AzureWorkloadBackupRequest",
            "backupType": "CopyOnlyFull",
            "recoveryPointExpiryTimeInUTC": EXPIRY_30,
        },
        id="workload-copy-only-30-days",
    ),
    pytest.param(
        {"container_name": WL_CONTAINER, "backup_type": "Log", "retain_until": "2030-01-01T00:00:00Z"},
        {"objectType": "AzureWorkloadBackupRequest", "backupType": "Log"},
        id="workload-log-drops-expiry",
    ),
    pytest.param(
        {"container_name": WL_CONTAINER, "backup_type": "Differential"},
        {"objectType": "AzureWorkloadBackupRequest", "backupType": "Differential"},
        id="workload-differential-no-expiry",
    ),
    pytest.param(
        {"container_name": WL_CONTAINER, "backup_type": "Incremental"},
        {"objectType": "AzureWorkloadBackupRequest", "backupType": "Incremental"},
        id="workload-incremental-no-expiry",
    ),
    pytest.param(
        {"container_name": WL_CONTAINER, "backup_type": "Full", "enable_compression": True},
        {
            "objectType": "AzureWorkloadBackupRequest",
            "backupType": "Full",
            "enableCompression": True,
            "recoveryPointExpiryTimeInUTC": EXPIRY_45,
        },
        id="workload-compression",
    ),
    pytest.param(
        {"container_name": WL_CONTAINER, "enable_compression": False, "retain_until": "2024-07-01T08:00:00+02:00"},
        {
            "objectType": "AzureWorkloadBackupRequest",
            "backupType": "Full",
            "enableCompression": False,
            "recoveryPointExpiryTimeInUTC": "2024-07-01T06:00:00.000Z",
        },
        id="workload-explicit-retain-until-wins",
    ),
    pytest.param(
        {"container_name": VM_CONTAINER, "retain_until": datetime(2024, 6, 1, 1, 2, 3, 456789, tzinfo=UTC)},
        {"objectType": "IaasVMBackupRequest", "recoveryPointExpiryTimeInUTC": "2024-06-01T01:02:03.456Z"},
        id="vm-retain-until-datetime",
    ),
    pytest.param(
        {"container_name": AFS_CONTAINER, "retain_until": "2030-03-07T18:29:59Z"},
        {"objectType": "AzureFileShareBackupRequest", "recoveryPointExpiryTimeInUTC": "2030-03-07T18:29:59.000Z"},
        id="afs-retain-until-string",
    ),
    pytest.param(
        {"container_name": VM_CONTAINER, "retain_until": "2030-03-07T18:29:59"},
        {"objectType": "IaasVMBackupRequest", "recoveryPointExpiryTimeInUTC": "2030-03-07T18:29:59.000Z"},
        id="naive-retain-until-is-utc",
    ),
    pytest.param(
        {
            "container_name": VM_CONTAINER,
            "backup_request": {
                "properties": {
                    "objectType": "IaasVMBackupRequest",
                    "recoveryPointExpiryTimeInUTC": "2018-12-01T02:16:20.3156909Z",
                }
            },
        },
        {"objectType": "IaasVMBackupRequest", "recoveryPointExpiryTimeInUTC": "2018-12-01T02:16:20.3156909Z"},
        id="explicit-with-properties-wrapper",
    ),
    pytest.param(
        {"container_name": VM_CONTAINER, "backup_request": {"objectType": "AzureFileShareBackupRequest"}},
        {"objectType": "AzureFileShareBackupRequest"},
        id="explicit-without-wrapper-wins-over-container",
    ),
    pytest.param(
        {"container_name": WL_CONTAINER, "backup_request": {"objectType": "AzureWorkloadBackupRequest"}},
        {"objectType": "AzureWorkloadBackupRequest", "backupType": "Full", "recoveryPointExpiryTimeInUTC": EXPIRY_45},
        id="explicit-workload-gets-defaults",
    ),
    pytest.param(
        {
            "container_name": WL_CONTAINER,
            "backup_request": {
                "objectType": "AzureWorkloadBackupRequest",
                "backupType": "Log",
                "recoveryPointExpiryTimeInUTC": "2030-01-01T00:00:00.000Z",
            },
        },
        {"objectType": "AzureWorkloadBackupRequest", "backupType": "Log"},
        id="explicit-workload-log-drops-expiry",
    ),
    pytest.param(
        {
            "container_name": WL_CONTAINER,
            "backup_request": {"objectType": "AzureWorkloadBackupRequest", "backupType": "Full"},
            "backup_type": "CopyOnlyFull",
        },
        {
            "objectType": "AzureWorkloadBackupRequest",
            "backupType": "CopyOnlyFull",
            "recoveryPointExpiryTimeInUTC": EXPIRY_30,
        },
        id="backup-type-argument-overrides-explicit",
    ),
]


@pytest.mark.parametrize(("kwargs", "expected"), BACKUP_REQUEST_CASES)
def test_build_backup_request(kwargs: dict[str, Any], expected: dict[str, Any]) -> None:
    assert build_backup_request(now=NOW, **kwargs) == {"properties": expected}


def test_build_backup_request_does_not_mutate_the_given_mapping() -> None:
    given = {"properties": {"objectType": "AzureWorkloadBackupRequest"}}
    build_backup_request(container_name=WL_CONTAINER, backup_request=given, backup_type="Log", now=NOW)
    assert given == {"properties": {"objectType": "AzureWorkloadBackupRequest"}}


def test_build_backup_request_default_now_is_current_time() -> None:
    body = build_backup_request(container_name=WL_CONTAINER)
    expiry = datetime.strptime(body["properties"]["recoveryPointExpiryTimeInUTC"], "%Y-%m-%dT%H:%M:%S.%fZ")
    delta = expiry.replace(tzinfo=UTC) - datetime.now(UTC)
    assert timedelta(days=44, hours=23) < delta <= timedelta(days=45)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param(
            {"backup_request": {"objectType": "IaasVMRestoreRequest"}},
            r"backup_request\.objectType='IaasVMRestoreRequest': must be one of",
            id="bad-object-type",
        ),
        pytest.param({"backup_request": {"properties": {}}}, r"backup_request\.objectType=None", id="no-object-type"),
        pytest.param(
            {"backup_request": "IaasVMBackupRequest"},
            r"backup_request='IaasVMBackupRequest': must be a mapping",
            id="not-mapping",
        ),
        pytest.param({"backup_type": "Weekly"}, r"backup_type='Weekly': must be one of", id="bad-backup-type"),
        pytest.param({"backup_type": "Invalid"}, r"backup_type='Invalid': must be one of", id="invalid-backup-type"),
        pytest.param(
            {"backup_request": {"objectType": "AzureWorkloadBackupRequest", "backupType": "Weekly"}},
            r"backup_type='Weekly': must be one of",
            id="bad-explicit-backup-type",
        ),
        pytest.param(
            {"enable_compression": "yes"}, r"enable_compression='yes': must be true or false", id="compression-str"
        ),
        pytest.param(
            {"backup_request": {"objectType": "IaasVMBackupRequest"}, "backup_type": "Full"},
            r"backup_type='Full': applies only to workload \(SQL/SAP\) items",
            id="backup-type-on-vm",
        ),
        pytest.param(
            {"backup_request": {"objectType": "AzureFileShareBackupRequest", "backupType": "Full"}},
            r"backup_type='Full': applies only to workload",
            id="explicit-backup-type-on-afs",
        ),
        pytest.param(
            {"retain_until": "2024-04-30T00:00:00Z"},
            r"retain_until='2024-04-30T00:00:00Z': must be in the future",
            id="retain-until-past",
        ),
        pytest.param(
            {"retain_until": NOW}, re.escape(f"retain_until={NOW!r}: must be in the future"), id="retain-until-now"
        ),
        pytest.param(
            {"retain_until": "next week"}, r"retain_until='next week': is not an ISO-8601", id="retain-until-garbage"
        ),
        pytest.param(
            {"retain_until": 1_700_000_000}, r"retain_until=1700000000: must be a datetime", id="retain-until-int"
        ),
    ],
)
def test_build_backup_request_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(AzureBackupConfigError, match=match):
        build_backup_request(now=NOW, **{"container_name": VM_CONTAINER, **kwargs})


def test_enable_compression_on_file_share_request_names_enable_compression() -> None:
    with pytest.raises(AzureBackupConfigError, match=r"enable_compression=True: applies only to workload"):
        build_backup_request(
            container_name=AFS_CONTAINER,
            backup_request={"objectType": "AzureFileShareBackupRequest"},
            enable_compression=True,
            now=NOW,
        )


@pytest.mark.parametrize(
    ("container", "kwargs", "match"),
    [
        (VM_CONTAINER, {"backup_type": "Full"}, rf"backup_type='Full': .*{re.escape(VM_CONTAINER)}"),
        (AFS_CONTAINER, {"enable_compression": True}, rf"enable_compression=True: .*{re.escape(AFS_CONTAINER)}"),
        (AFS_CONTAINER, {"enable_compression": False}, r"enable_compression=False"),
    ],
    ids=["vm-backup-type", "afs-compression", "afs-compression-false"],
)
def test_workload_options_on_vm_or_file_share_container_are_rejected(
    container: str, kwargs: dict[str, Any], match: str
) -> None:
    """backup_type / enable_compression never turn a VM or file-share container into a workload request."""
    with pytest.raises(AzureBackupConfigError, match=match):
        build_backup_request(container_name=container, now=NOW, **kwargs)
