"""Fidelity: the official SDK (azure-mgmt-recoveryservicesbackup 11.2.0) drives the emulator without errors.

Note on SDK 11.2.0: its TypeSpec model base resolves only one discriminator level, so items whose
``protectedItemType`` sits two levels down (``Microsoft.Compute/virtualMachines`` under AzureIaaSVMProtectedItem,
``AzureVmWorkloadSQLDatabase`` under AzureVmWorkloadProtectedItem) and SQL recovery points deserialize as the base
class; their wire fields are still readable through the model's mapping interface.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from azure.identity import ClientSecretCredential
from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient
from azure.mgmt.recoveryservicesbackup import models as m

from airflow_backup_provider.emulator import (
    CLIENT_ID,
    CLIENT_SECRET,
    FILE_SHARE_ITEM,
    RESOURCE_GROUP,
    SEEDED_ITEMS,
    SUBSCRIPTION_ID,
    TENANT_ID,
    VAULT_NAME,
    VM_ITEM,
    Emulator,
    SeededItem,
)

JOB_CLASSES = {"VM": m.AzureIaaSVMJob, "AzureFileShare": m.AzureStorageJob, "SQLDataBase": m.AzureWorkloadJob}


@pytest.fixture
def client(azure_backup_emulator: Emulator) -> Iterator[RecoveryServicesBackupClient]:
    emu = azure_backup_emulator
    credential = ClientSecretCredential(
        TENANT_ID, CLIENT_ID, CLIENT_SECRET, authority=emu.base_url, disable_instance_discovery=True
    )
    with RecoveryServicesBackupClient(
        credential, SUBSCRIPTION_ID, base_url=emu.base_url, credential_scopes=[emu.base_url + "/.default"]
    ) as sdk:
        yield sdk


def _request_for(item: SeededItem) -> m.BackupRequestResource:
    properties: m.BackupRequest = {
        "VM": m.IaasVMBackupRequest(),
        "AzureFileShare": m.AzureFileShareBackupRequest(),
        "SQLDataBase": m.AzureWorkloadBackupRequest(backup_type="Full"),
    }[item.workload]
    return m.BackupRequestResource(properties=properties)


@pytest.mark.parametrize("item", SEEDED_ITEMS, ids=lambda i: i.workload)
def test_sdk_backup_flow(
    client: RecoveryServicesBackupClient, azure_backup_emulator: Emulator, item: SeededItem
) -> None:
    azure_backup_emulator.set_item_behavior(item.protected_item_name, duration_seconds=120)
    headers = client.backups.trigger(
        VAULT_NAME, RESOURCE_GROUP, "Azure", item.container_name, item.protected_item_name, _request_for(item),
        cls=lambda response, body, headers: response.http_response.headers,
    )  # fmt: skip
    assert headers is not None  # trigger() returns what cls returns: the 202's headers
    op_id = urlsplit(headers["Azure-AsyncOperation"]).path.rsplit("/", 1)[1]
    assert urlsplit(headers["Location"]).path.endswith(f"/operationResults/{op_id}")

    for _ in range(20):
        status = client.protected_item_operation_statuses.get(
            VAULT_NAME, RESOURCE_GROUP, "Azure", item.container_name, item.protected_item_name, op_id
        )
        if status.status != m.OperationStatusValues.IN_PROGRESS:
            break
    assert status.status == m.OperationStatusValues.SUCCEEDED
    assert isinstance(status.properties, m.OperationStatusJobExtendedInfo)
    job_id = status.properties.job_id
    assert job_id
    vault_level = client.backup_operation_statuses.get(VAULT_NAME, RESOURCE_GROUP, op_id)
    assert isinstance(vault_level.properties, m.OperationStatusJobExtendedInfo)
    assert vault_level.properties.job_id == job_id

    job = client.job_details.get(VAULT_NAME, RESOURCE_GROUP, job_id)
    assert job.name == job_id
    assert isinstance(job.properties, JOB_CLASSES[item.workload])
    assert job.properties.status == "InProgress"
    assert job.properties.operation == "Backup"
    assert job.properties.entity_friendly_name == item.friendly_name
    assert job.properties.backup_management_type == item.backup_management_type
    assert job.properties.start_time is not None

    deadline = time.monotonic() + 5
    while job.properties.status == "InProgress":
        assert time.monotonic() < deadline
        time.sleep(0.05)
        job = client.job_details.get(VAULT_NAME, RESOURCE_GROUP, job_id)
    assert job.properties.status == "Completed"
    assert job.properties.end_time is not None and job.properties.end_time > job.properties.start_time
    if item.workload == "VM":
        assert isinstance(job.properties.duration, timedelta)
        assert isinstance(job.properties.extended_info, m.AzureIaaSVMJobExtendedInfo)
        assert job.properties.extended_info.tasks_list[0].task_id == "Take Snapshot"
        assert job.properties.extended_info.property_bag["VM Name"] == item.friendly_name

    protected = client.protected_items.get(
        VAULT_NAME, RESOURCE_GROUP, "Azure", item.container_name, item.protected_item_name
    )
    assert protected.name == item.protected_item_name
    assert protected.properties.backup_management_type == item.backup_management_type
    assert protected.properties["lastBackupTime"] == job.as_dict()["properties"]["endTime"]
    points = list(
        client.recovery_points.list(VAULT_NAME, RESOURCE_GROUP, "Azure", item.container_name, item.protected_item_name)
    )
    assert len(points) == 2
    assert all(isinstance(p.properties, m.RecoveryPoint) for p in points)


def test_sdk_lists_jobs_across_pages(client: RecoveryServicesBackupClient, azure_backup_emulator: Emulator) -> None:
    azure_backup_emulator.configure(job_page_size=2)
    jobs = list(client.backup_jobs.list(VAULT_NAME, RESOURCE_GROUP))
    assert len(jobs) == 9
    assert {type(j.properties) for j in jobs} == set(JOB_CLASSES.values())
    for job in jobs:
        assert job.properties is not None
        assert job.properties.status and job.properties.operation and job.properties.entity_friendly_name
    filtered = list(
        client.backup_jobs.list(
            VAULT_NAME, RESOURCE_GROUP, filter="operation eq 'Backup' and startTime eq '2016-01-01 00:00:00 AM'"
        )
    )
    assert len(filtered) == 6
    page_requests = [r for r in azure_backup_emulator.requests if r.path.endswith("/backupJobs")]
    assert sum("$skiptoken" in r.query for r in page_requests) == 4 + 2
    assert all(r.query.get("$filter") for r in page_requests[5:])  # the SDK keeps the filter from the nextLink


def test_sdk_items_and_cancel_and_restore(
    client: RecoveryServicesBackupClient, azure_backup_emulator: Emulator
) -> None:
    items = list(
        client.backup_protected_items.list(VAULT_NAME, RESOURCE_GROUP, filter="backupManagementType eq 'AzureStorage'")
    )
    assert [i.name for i in items] == [FILE_SHARE_ITEM.protected_item_name]
    assert isinstance(items[0].properties, m.AzureFileshareProtectedItem)
    assert items[0].properties.friendly_name == FILE_SHARE_ITEM.friendly_name

    point = next(
        iter(
            client.recovery_points.list(
                VAULT_NAME, RESOURCE_GROUP, "Azure", VM_ITEM.container_name, VM_ITEM.protected_item_name
            )
        )
    )
    assert isinstance(point.properties, m.IaasVMRecoveryPoint)
    assert point.name is not None
    request = m.RestoreRequestResource(
        properties=m.IaasVMRestoreRequest(recovery_point_id=point.name, recovery_type="RestoreDisks")
    )
    poller = client.restores.begin_trigger(
        VAULT_NAME, RESOURCE_GROUP, "Azure", VM_ITEM.container_name, VM_ITEM.protected_item_name, point.name, request,
        polling_interval=0.01,
    )  # fmt: skip
    assert poller.result() is None
    restore = next(iter(client.backup_jobs.list(VAULT_NAME, RESOURCE_GROUP, filter="operation eq 'Restore'")))
    assert restore.name is not None and restore.properties is not None
    assert restore.properties.status == "InProgress"

    client.job_cancellations.trigger(VAULT_NAME, RESOURCE_GROUP, restore.name)
    cancelling = client.job_details.get(VAULT_NAME, RESOURCE_GROUP, restore.name).properties
    assert cancelling is not None and cancelling.status == "Cancelling"


def test_sdk_with_default_credential_scopes(azure_backup_emulator: Emulator) -> None:
    """A user's own DAG code builds the client as for Azure, pointing only ``base_url`` at the emulator: the SDK
    then asks for ``https://management.azure.com/.default``, which the emulator accepts as ARM does."""
    emu = azure_backup_emulator
    credential = ClientSecretCredential(
        TENANT_ID, CLIENT_ID, CLIENT_SECRET, authority=emu.base_url, disable_instance_discovery=True
    )
    with RecoveryServicesBackupClient(credential, SUBSCRIPTION_ID, base_url=emu.base_url) as sdk:
        items = list(sdk.backup_protected_items.list(VAULT_NAME, RESOURCE_GROUP))
        assert {i.name for i in items} == {i.protected_item_name for i in SEEDED_ITEMS}
        job = next(iter(sdk.backup_jobs.list(VAULT_NAME, RESOURCE_GROUP)))
        assert job.name and job.properties is not None and job.properties.status
    token_posts = [r for r in emu.requests if r.path.endswith("/oauth2/v2.0/token")]
    assert token_posts, "the SDK did not sign in at the emulator"
    assert token_posts[0].body["scope"] == "https://management.azure.com/.default"
    assert all(r.status == 200 for r in token_posts)
    arm_calls = [r for r in emu.requests if r.path.startswith("/subscriptions/")]
    assert len(arm_calls) == 2 and all(r.status == 200 and r.has_bearer for r in arm_calls)


def test_sdk_follows_protected_item_pages(
    client: RecoveryServicesBackupClient, azure_backup_emulator: Emulator
) -> None:
    azure_backup_emulator.configure(item_page_size=1)
    items = list(client.backup_protected_items.list(VAULT_NAME, RESOURCE_GROUP))
    assert [i.name for i in items] == [i.protected_item_name for i in SEEDED_ITEMS]
    pages = [r for r in azure_backup_emulator.requests if r.path.endswith("/backupProtectedItems")]
    assert len(pages) == 3
