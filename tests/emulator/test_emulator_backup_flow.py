"""Backup flow over raw HTTP: trigger → operation → job → completion, validation, auth, items, recovery points."""

from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import quote, urlsplit

import pytest

from airflow_backup_provider.emulator import (
    FILE_SHARE_ITEM,
    RESOURCE_GROUP,
    SEEDED_ITEMS,
    SQL_ITEM,
    SUBSCRIPTION_ID,
    TENANT_ID,
    VAULT_NAME,
    VM_ITEM,
    Emulator,
    SeededItem,
)

from .conftest import Arm

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
EXPECTED_JOB_TYPE = {"VM": "AzureIaaSVMJob", "AzureFileShare": "AzureStorageJob", "SQLDataBase": "AzureWorkloadJob"}


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.mark.parametrize("item", SEEDED_ITEMS, ids=lambda i: i.workload)
def test_trigger_operation_job_completed(arm: Arm, azure_backup_emulator: Emulator, item: SeededItem) -> None:
    azure_backup_emulator.set_item_behavior(item.protected_item_name, "Completed", duration_seconds=240)
    rps_before = len(arm.get(arm.item_path(item) + "/recoveryPoints").json()["value"])

    accepted = arm.trigger_backup(item)
    assert accepted.status_code == 202, accepted.text
    assert accepted.content == b""
    assert accepted.headers["Retry-After"] == "1"
    assert accepted.headers["x-ms-ratelimit-remaining-subscription-writes"].isdigit()
    assert GUID.match(accepted.headers["x-ms-request-id"])
    status_url = urlsplit(accepted.headers["Azure-AsyncOperation"])
    result_url = urlsplit(accepted.headers["Location"])
    op_id = status_url.path.rsplit("/", 1)[1]
    assert status_url.path.endswith(f"/operationsStatus/{op_id}") and result_url.path.endswith(
        f"/operationResults/{op_id}"
    )
    assert status_url.query == "api-version=2016-12-01"

    # By default the first poll is InProgress, without properties.
    first = arm.get(accepted.headers["Azure-AsyncOperation"]).json()
    assert first == {"id": op_id, "name": op_id, "status": "InProgress", "startTime": first["startTime"]}
    done = arm.follow_operation(accepted)
    assert done["status"] == "Succeeded"
    assert done["properties"]["objectType"] == "OperationStatusJobExtendedInfo"
    job_id = done["properties"]["jobId"]
    assert GUID.match(job_id)
    # the vault-level status endpoint and operationResults agree
    assert arm.get(f"/backupOperations/{op_id}").json() == done
    assert arm.get(accepted.headers["Location"]).status_code == 204

    job = arm.job(job_id)
    assert job["name"] == job_id
    assert job["type"] == "Microsoft.RecoveryServices/vaults/backupJobs"
    props = job["properties"]
    assert props["jobType"] == EXPECTED_JOB_TYPE[item.workload]
    assert props["operation"] == "Backup"
    assert props["entityFriendlyName"] == item.friendly_name
    assert props["backupManagementType"] == item.backup_management_type
    assert props["status"] == "InProgress"
    assert "endTime" not in props
    assert props["actionsInfo"] in (["Cancellable"], [1])

    finished = arm.wait_for_job(job_id)["properties"]
    assert finished["status"] == "Completed"
    assert _parse(finished["endTime"]) > _parse(finished["startTime"])
    assert finished["actionsInfo"] == []
    assert all(task["status"] == "Completed" for task in finished["extendedInfo"]["tasksList"])

    item_body = arm.get(arm.item_path(item)).json()["properties"]
    assert item_body["lastBackupTime"] == finished["endTime"]
    assert item_body["lastBackupStatus"] == ("Completed" if item.workload == "VM" else "Healthy")
    points = arm.get(arm.item_path(item) + "/recoveryPoints").json()
    assert len(points["value"]) == rps_before + 1
    newest = points["value"][0]["properties"]
    assert newest.get("recoveryPointTime", newest.get("recoveryPointTimeInUTC")) == finished["endTime"]


def test_vm_job_details_while_running(arm: Arm, azure_backup_emulator: Emulator) -> None:
    azure_backup_emulator.configure(time_scale=1.0)  # 1200 virtual s = 20 wall minutes: frozen for this test
    job_id = arm.follow_operation(arm.trigger_backup(VM_ITEM))["properties"]["jobId"]
    props = arm.job(job_id)["properties"]
    assert re.match(r"^PT[\d.]+S$", props["duration"])
    assert props["virtualMachineVersion"] == "Compute"
    assert props["isUserTriggered"] is True
    tasks = props["extendedInfo"]["tasksList"]
    assert [t["taskId"] for t in tasks] == ["Take Snapshot", "Transfer data to vault"]
    assert [t["status"] for t in tasks] == ["InProgress", "NotStarted"]
    assert tasks[1]["startTime"] == "0001-01-01T00:00:00Z"
    assert props["extendedInfo"]["propertyBag"]["VM Name"] == VM_ITEM.friendly_name
    assert 0 <= props["extendedInfo"]["progressPercentage"] < 30


def test_file_share_and_sql_jobs_use_timespan_durations(arm: Arm, azure_backup_emulator: Emulator) -> None:
    for item in (FILE_SHARE_ITEM, SQL_ITEM):
        azure_backup_emulator.set_item_behavior(item.protected_item_name, duration_seconds=60)
    share_job = arm.follow_operation(arm.trigger_backup(FILE_SHARE_ITEM))["properties"]["jobId"]
    sql_job = arm.follow_operation(
        arm.trigger_backup(SQL_ITEM, {"objectType": "AzureWorkloadBackupRequest", "backupType": "Log"})
    )["properties"]["jobId"]
    share = arm.wait_for_job(share_job)["properties"]
    sql = arm.wait_for_job(sql_job)["properties"]
    assert re.match(r"^\d{2}:\d{2}:\d{2}(\.\d{7})?$", share["duration"])
    assert re.match(r"^\d{2}:\d{2}:\d{2}(\.\d{7})?$", sql["duration"])
    assert share["storageAccountName"] == "stdata01"
    assert "Data Transferred (in MB)" in share["extendedInfo"]["propertyBag"]
    assert sql["workloadType"] == "SQLDataBase"
    assert sql["extendedInfo"]["propertyBag"]["Backup Type"] == "Log"
    rp = arm.get(arm.item_path(SQL_ITEM) + "/recoveryPoints").json()["value"][0]["properties"]
    assert rp["objectType"] == "AzureWorkloadSQLRecoveryPoint"
    assert rp["type"] == "Log"


@pytest.mark.parametrize("outcome", ["Failed", "CompletedWithWarnings"])
@pytest.mark.parametrize("item", SEEDED_ITEMS, ids=lambda i: i.workload)
def test_configured_outcomes(arm: Arm, azure_backup_emulator: Emulator, item: SeededItem, outcome: str) -> None:
    azure_backup_emulator.set_item_behavior(item.protected_item_name, outcome, duration_seconds=30)
    rps_before = len(arm.get(arm.item_path(item) + "/recoveryPoints").json()["value"])
    job_id = arm.follow_operation(arm.trigger_backup(item))["properties"]["jobId"]
    props = arm.wait_for_job(job_id)["properties"]
    assert props["status"] == outcome
    error = props["errorDetails"][0]
    assert isinstance(error["errorCode"], int)
    assert error["errorString"] and error["recommendations"]
    assert props["extendedInfo"]["dynamicErrorMessage"] == error["errorString"]
    assert props["extendedInfo"]["tasksList"][-1]["status"] == outcome
    rps_after = len(arm.get(arm.item_path(item) + "/recoveryPoints").json()["value"])
    assert rps_after == rps_before + (0 if outcome == "Failed" else 1)
    item_props = arm.get(arm.item_path(item)).json()["properties"]
    if outcome == "Failed":
        assert item_props["lastBackupStatus"] in ("Failed", "Unhealthy")
    # another backup can start once the job is terminal
    assert arm.trigger_backup(item).status_code == 202


def test_second_trigger_while_in_progress_is_rejected(arm: Arm, azure_backup_emulator: Emulator) -> None:
    azure_backup_emulator.configure(time_scale=1.0)
    assert arm.trigger_backup(VM_ITEM).status_code == 202
    second = arm.trigger_backup(VM_ITEM)
    assert second.status_code == 400
    assert second.json()["error"]["code"] == "UserErrorBackupOperationInProgress"
    assert second.json()["error"]["message"].startswith("Unable to initiate backup as another backup operation")
    # other items are independent
    assert arm.trigger_backup(FILE_SHARE_ITEM).status_code == 202


def test_unknown_item_and_bad_requests(arm: Arm) -> None:
    missing = arm.post(
        "/backupFabrics/Azure/protectionContainers/IaasVMContainer;iaasvmcontainerv2;rg;ghost"
        "/protectedItems/VM;iaasvmcontainerv2;rg;ghost/backup",
        json={"properties": {"objectType": "IaasVMBackupRequest"}},
    )
    assert missing.status_code == 404
    assert missing.json() == {
        "error": {
            "code": "BMSUserErrorDataSourceObjectNotFound",
            "message": "Item not found. Selected item might have been deleted. Please check if item is registered "
            "to the vault.",
        }
    }
    assert arm.get(arm.item_path(VM_ITEM).replace("vm-app-01", "vm-ghost")).status_code == 404
    wrong_type = arm.trigger_backup(FILE_SHARE_ITEM, {"objectType": "IaasVMBackupRequest"})
    assert wrong_type.status_code == 400
    assert wrong_type.json()["error"]["code"] == "BMSUserErrorInvalidInput"
    bodies: list[dict[str, object]] = [{}, {"properties": {}}, {"properties": "x"}]
    for body in bodies:
        response = arm.post(arm.item_path(VM_ITEM) + "/backup", json=body)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "BMSUserErrorInvalidInput"
    bad_json = arm.post(arm.item_path(VM_ITEM) + "/backup", data=b"{not json",
                        headers={"Content-Type": "application/json"})  # fmt: skip
    assert bad_json.status_code == 400
    bad_backup_type = arm.trigger_backup(SQL_ITEM, {"objectType": "AzureWorkloadBackupRequest", "backupType": "Huge"})
    assert bad_backup_type.status_code == 400
    expired = arm.trigger_backup(
        VM_ITEM, {"objectType": "IaasVMBackupRequest", "recoveryPointExpiryTimeInUTC": "2001-01-01T00:00:00Z"}
    )
    assert expired.status_code == 400
    assert arm.get("/backupOperations/00000000-0000-0000-0000-000000000001").status_code == 404
    not_found = arm.get("/backupJobs/00000000-0000-0000-0000-000000000001")
    assert not_found.status_code == 404
    assert not_found.json()["error"]["code"] == "BMSUserErrorJobNotFound"
    assert arm.get("/backupUnknownThings").status_code == 404
    assert arm.request("DELETE", "/backupJobs").status_code == 405


def test_percent_encoded_and_case_insensitive_paths(arm: Arm, azure_backup_emulator: Emulator) -> None:
    encoded = (
        f"/Subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{RESOURCE_GROUP.upper()}/providers/microsoft.recoveryservices"
        f"/Vaults/{VAULT_NAME}/backupFabrics/azure"
        f"/protectionContainers/{quote(VM_ITEM.container_name.lower(), safe='')}"
        f"/protectedItems/{quote(VM_ITEM.protected_item_name.lower(), safe='')}"
    )
    assert "%3B" in encoded
    response = arm.get(azure_backup_emulator.base_url + encoded)
    assert response.status_code == 200, response.text
    assert response.json()["name"] == VM_ITEM.protected_item_name
    recorded = azure_backup_emulator.requests[-1]
    assert VM_ITEM.protected_item_name.lower() in recorded.path
    assert "%3B" in recorded.raw_path
    # a backup trigger through the encoded path works too
    assert arm.post(azure_backup_emulator.base_url + encoded + "/backup?api-version=2019-05-13",
                    json={"properties": {"objectType": "IaasVMBackupRequest"}}).status_code == 202  # fmt: skip


def test_unknown_subscription_group_vault(arm: Arm, azure_backup_emulator: Emulator) -> None:
    base = azure_backup_emulator.base_url
    vault = (
        f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.RecoveryServices/vaults"
    )
    wrong_vault = arm.get(f"{base}{vault}/nope")
    assert wrong_vault.status_code == 404
    assert wrong_vault.json()["error"]["code"] == "ResourceNotFound"
    assert wrong_vault.json()["error"]["message"].startswith(
        f"The Resource 'Microsoft.RecoveryServices/vaults/nope' under resource group '{RESOURCE_GROUP}' was not found."
    )
    wrong_group = arm.get(f"{base}{vault.replace(RESOURCE_GROUP, 'rg-nope')}/{VAULT_NAME}")
    assert (wrong_group.status_code, wrong_group.json()["error"]["code"]) == (404, "ResourceGroupNotFound")
    wrong_sub = arm.get(f"{base}{vault.replace(SUBSCRIPTION_ID, '99999999-0000-0000-0000-000000000000')}/{VAULT_NAME}")
    assert (wrong_sub.status_code, wrong_sub.json()["error"]["code"]) == (404, "SubscriptionNotFound")


def test_vault_get(arm: Arm, azure_backup_emulator: Emulator) -> None:
    response = arm.get("")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.headers["x-ms-ratelimit-remaining-subscription-reads"].isdigit()
    assert response.headers["x-ms-correlation-request-id"]
    body = response.json()
    assert body["id"] == azure_backup_emulator.vault_id
    assert body["sku"] == {"name": "RS0", "tier": "Standard"}
    assert body["properties"]["provisioningState"] == "Succeeded"


def test_missing_api_version(arm: Arm) -> None:
    response = arm.get("/backupJobs", api_version=False)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "MissingApiVersionParameter"
    # any api-version value is accepted (header URLs carry old ones)
    assert arm.get("/backupJobs", params={"api-version": "2016-12-01"}).status_code == 200


def test_authentication_failures(arm: Arm, azure_backup_emulator: Emulator) -> None:
    missing = arm.get("/backupJobs", token="")
    assert missing.status_code == 401
    assert missing.json() == {
        "error": {
            "code": "AuthenticationFailed",
            "message": "Authentication failed. The 'Authorization' header is missing.",
        }
    }
    challenge = missing.headers["WWW-Authenticate"]
    assert challenge.startswith(
        f'Bearer authorization_uri="https://login.windows.net/{TENANT_ID}", error="invalid_token"'
    )
    assert 'error_description="' in challenge

    unknown = arm.get("/backupJobs", token="not-a-token")
    assert unknown.status_code == 401
    assert unknown.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert "WWW-Authenticate" in unknown.headers

    basic = arm.get("/backupJobs", token="", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert basic.status_code == 401

    short_lived = azure_backup_emulator.issue_token(lifetime=0)
    expired = arm.get("/backupJobs", token=short_lived)
    assert expired.status_code == 401
    assert expired.json()["error"]["code"] == "ExpiredAuthenticationToken"
    assert re.match(
        r"^The access token expiry UTC time '\d+/\d+/\d{4} \d+:\d{2}:\d{2} [AP]M' is earlier than current UTC time "
        r"'\d+/\d+/\d{4} \d+:\d{2}:\d{2} [AP]M'\.$",
        expired.json()["error"]["message"],
    )
    assert "ExpiredAuthenticationToken" not in expired.headers["WWW-Authenticate"]
    # nothing secret in the log: the Authorization value is redacted but its fingerprint is kept
    entry = azure_backup_emulator.requests[-1]
    assert entry.headers["Authorization"] == "<redacted>"
    assert entry.has_bearer and entry.token_sha256 and short_lived not in str(entry.to_dict())


def test_protected_items_list_and_filter(arm: Arm) -> None:
    everything = arm.get("/backupProtectedItems").json()["value"]
    assert {i["name"] for i in everything} == {i.protected_item_name for i in SEEDED_ITEMS}
    kinds = {i["properties"]["protectedItemType"] for i in everything}
    assert kinds == {"Microsoft.Compute/virtualMachines", "AzureFileShareProtectedItem", "AzureVmWorkloadSQLDatabase"}
    vms = arm.get(
        "/backupProtectedItems", params={"$filter": "backupManagementType eq 'AzureIaasVM' and itemType eq 'VM'"}
    )
    assert [i["name"] for i in vms.json()["value"]] == [VM_ITEM.protected_item_name]
    shares = arm.get("/backupProtectedItems", params={"$filter": "backupManagementType eq 'AzureStorage'"}).json()
    assert [i["name"] for i in shares["value"]] == [FILE_SHARE_ITEM.protected_item_name]
    # the list's names and ids are the ones to use for the other calls
    for entry in everything:
        assert arm.get(azure_backup_emulator_url(arm, entry["id"])).json()["name"] == entry["name"]
    bad = arm.get("/backupProtectedItems", params={"$filter": "color eq 'blue'"})
    assert bad.status_code == 400
    assert "color eq 'blue'" in bad.json()["error"]["message"]


def azure_backup_emulator_url(arm: Arm, arm_id: str) -> str:
    return arm.emu.base_url + arm_id


def test_recovery_points_seeded_and_single_get(arm: Arm) -> None:
    for item in SEEDED_ITEMS:
        body = arm.get(arm.item_path(item) + "/recoveryPoints").json()
        assert body["nextLink"] is None
        assert len(body["value"]) == 1
        point = body["value"][0]
        assert point["name"].isdigit()
        single = arm.get(arm.item_path(item) + f"/recoveryPoints/{point['name']}")
        assert single.json() == point
    assert arm.get(arm.item_path(VM_ITEM) + "/recoveryPoints/123").status_code == 404
    window = "startDate eq '2001-01-01 12:00:00 AM' and endDate eq '2002-01-01 12:00:00 AM'"
    assert arm.get(arm.item_path(VM_ITEM) + "/recoveryPoints", params={"$filter": window}).json()["value"] == []
