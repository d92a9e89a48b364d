"""Jobs list ($filter, paging), cancel and restore flows."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from airflow_backup_provider.emulator import FILE_SHARE_ITEM, SQL_ITEM, VM_ITEM, Emulator

from .conftest import Arm


def _all_pages(arm: Arm, params: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    response = arm.get("/backupJobs", params=params or {})
    assert response.status_code == 200, response.text
    body = response.json()
    jobs, links = list(body["value"]), []
    while body.get("nextLink"):
        links.append(body["nextLink"])
        body = arm.get(body["nextLink"]).json()
        jobs.extend(body["value"])
    return jobs, links


def _filter_time(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %I:%M:%S %p")


def test_list_is_newest_first_with_seeded_history(arm: Arm) -> None:
    body = arm.get("/backupJobs").json()
    assert "nextLink" not in body
    jobs = body["value"]
    assert len(jobs) == 9
    starts = [job["properties"]["startTime"] for job in jobs]
    assert starts == sorted(starts, reverse=True)
    assert {job["properties"]["status"] for job in jobs} == {"Completed", "Failed", "CompletedWithWarnings"}
    assert {job["properties"]["operation"] for job in jobs} == {"Backup", "ConfigureBackup"}


def test_paging_follows_absolute_next_links(arm: Arm, azure_backup_emulator: Emulator) -> None:
    everything = arm.get("/backupJobs").json()["value"]
    azure_backup_emulator.configure(job_page_size=2)
    paged, links = _all_pages(arm)
    assert [j["name"] for j in paged] == [j["name"] for j in everything]
    assert len(links) == 4
    for link in links:
        parts = urlsplit(link)
        assert f"{parts.scheme}://{parts.netloc}" == azure_backup_emulator.base_url
        assert parts.path == f"{azure_backup_emulator.vault_id}/backupJobs"
        query = parse_qs(parts.query)
        assert query["api-version"] == ["2017-07-01"]
        assert query["$skiptoken"]


def test_paging_is_stable_when_new_jobs_arrive(arm: Arm, azure_backup_emulator: Emulator) -> None:
    azure_backup_emulator.configure(job_page_size=3, time_scale=1.0)
    first = arm.get("/backupJobs").json()
    arm.trigger_backup(VM_ITEM)  # a new job lands at the head; later pages must not repeat or skip
    rest, _ = _all_pages(arm, {"$skiptoken": parse_qs(urlsplit(first["nextLink"]).query)["$skiptoken"][0]})
    names = [j["name"] for j in first["value"] + rest]
    assert len(names) == len(set(names)) == 9


def test_filters(arm: Arm, azure_backup_emulator: Emulator) -> None:
    def names(filter_text: str) -> list[str]:
        response = arm.get("/backupJobs", params={"$filter": filter_text})
        assert response.status_code == 200, response.text
        return [j["name"] for j in response.json()["value"]]

    assert len(names("status eq 'Failed'")) == 1
    assert len(names("status eq 'completedwithwarnings'")) == 1
    assert len(names("operation eq 'ConfigureBackup'")) == 3
    assert len(names("backupManagementType eq 'AzureStorage'")) == 3
    assert len(names("operation eq 'Backup' and backupManagementType eq 'AzureIaasVM' and status eq 'Completed'")) == 1
    one = names("status eq 'Failed'")[0]
    assert names(f"jobId eq '{one}'") == [one]
    now = datetime.now(timezone.utc)
    recent = names(
        f"startTime eq '{_filter_time(now - timedelta(days=2, hours=1))}' and endTime eq '{_filter_time(now)}'"
    )
    assert len(recent) == 4  # the failed VM backup two days ago and yesterday's three backups
    assert names("startTime eq '2016-01-01 00:00:00 AM' and endTime eq '2017-11-29 00:00:00 AM'") == []
    # a filter survives paging
    azure_backup_emulator.configure(job_page_size=1)
    paged, links = _all_pages(arm, {"$filter": "operation eq 'ConfigureBackup'"})
    assert len(paged) == 3 and len(links) == 2
    assert parse_qs(urlsplit(links[0]).query)["$filter"] == ["operation eq 'ConfigureBackup'"]


@pytest.mark.parametrize(
    "bad_filter",
    [
        "status eq Failed",
        "status eq 'Sleeping'",
        "colour eq 'blue'",
        "startTime eq 'yesterday'",
        "startTime eq '2024-01-01 13:00:00 PM'",
        "status eq 'Failed' or status eq 'Completed'",
    ],
)
def test_malformed_filters_are_rejected(arm: Arm, bad_filter: str) -> None:
    response = arm.get("/backupJobs", params={"$filter": bad_filter})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BMSUserErrorInvalidInput"
    assert "filter clause" in response.json()["error"]["message"]


def test_bad_skip_token(arm: Arm) -> None:
    response = arm.get("/backupJobs", params={"$skipToken": "%%%"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BMSUserErrorInvalidInput"


def test_cancel_flow(arm: Arm, azure_backup_emulator: Emulator) -> None:
    azure_backup_emulator.configure(cancel_duration=120)  # 0.2 s wall at time_scale 600
    azure_backup_emulator.set_item_behavior(VM_ITEM.protected_item_name, duration_seconds=6000)
    job_id = arm.follow_operation(arm.trigger_backup(VM_ITEM))["properties"]["jobId"]
    accepted = arm.post(f"/backupJobs/{job_id}/cancel")
    assert accepted.status_code == 202
    assert accepted.content == b""
    location = accepted.headers["Location"]
    assert urlsplit(location).path.startswith(f"{azure_backup_emulator.vault_id}/backupJobs/{job_id}/operationResults/")
    assert urlsplit(location).query == "api-version=2017-07-01"
    assert accepted.headers["Retry-After"] == "1"
    cancelling = arm.job(job_id)["properties"]
    assert cancelling["status"] == "Cancelling"
    assert cancelling["actionsInfo"] == []
    assert arm.get(location).status_code == 202
    assert arm.trigger_backup(VM_ITEM).json()["error"]["code"] == "UserErrorBackupOperationInProgress"
    cancelled = arm.wait_for_job(job_id)["properties"]
    assert cancelled["status"] == "Cancelled"
    assert "endTime" in cancelled
    assert "Cancelled" in [t["status"] for t in cancelled["extendedInfo"]["tasksList"]]
    assert arm.get(location).status_code == 204
    again = arm.post(f"/backupJobs/{job_id}/cancel")
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "BMSUserErrorJobNotCancellable"
    assert arm.post("/backupJobs/00000000-0000-0000-0000-000000000009/cancel").status_code == 404
    assert arm.get(f"/backupJobs/{job_id}/operationResults/nope").status_code == 404
    assert arm.trigger_backup(VM_ITEM).status_code == 202
    cancelled_list = arm.get("/backupJobs", params={"$filter": "status eq 'Cancelled'"}).json()["value"]
    assert [j["name"] for j in cancelled_list] == [job_id]


def test_restore_flow(arm: Arm, azure_backup_emulator: Emulator) -> None:
    azure_backup_emulator.set_item_behavior(VM_ITEM.protected_item_name, duration_seconds=120)
    point = arm.get(arm.item_path(VM_ITEM) + "/recoveryPoints").json()["value"][0]
    body = {
        "properties": {
            "objectType": "IaasVMRestoreRequest",
            "recoveryPointId": point["name"],
            "recoveryType": "RestoreDisks",
            "sourceResourceId": VM_ITEM.source_resource_id,
            "region": "westeurope",
        }
    }
    accepted = arm.post(arm.item_path(VM_ITEM) + f"/recoveryPoints/{point['name']}/restore", json=body)
    assert accepted.status_code == 202, accepted.text
    assert {"Azure-AsyncOperation", "Location", "Retry-After"} <= set(accepted.headers)
    assert "/operationsStatus/" in accepted.headers["Azure-AsyncOperation"]
    job_id = arm.follow_operation(accepted)["properties"]["jobId"]
    job = arm.job(job_id)["properties"]
    assert job["operation"] == "Restore"
    assert job["entityFriendlyName"] == VM_ITEM.friendly_name
    assert job["extendedInfo"]["propertyBag"]["Restore Type"] == "RestoreDisks"
    assert arm.wait_for_job(job_id)["properties"]["status"] == "Completed"
    # a restore does not add recovery points nor block a backup
    assert len(arm.get(arm.item_path(VM_ITEM) + "/recoveryPoints").json()["value"]) == 1
    assert arm.trigger_backup(VM_ITEM).status_code == 202
    restores = arm.get("/backupJobs", params={"$filter": "operation eq 'Restore'"}).json()["value"]
    assert [j["name"] for j in restores] == [job_id]


def test_restore_validation(arm: Arm) -> None:
    share_point = arm.get(arm.item_path(FILE_SHARE_ITEM) + "/recoveryPoints").json()["value"][0]["name"]
    wrong = arm.post(
        arm.item_path(FILE_SHARE_ITEM) + f"/recoveryPoints/{share_point}/restore",
        json={"properties": {"objectType": "IaasVMRestoreRequest"}},
    )
    assert wrong.status_code == 400
    assert wrong.json()["error"]["code"] == "BMSUserErrorInvalidInput"
    ok = arm.post(
        arm.item_path(FILE_SHARE_ITEM) + f"/recoveryPoints/{share_point}/restore",
        json={"properties": {"objectType": "AzureFileShareRestoreRequest", "recoveryType": "OriginalLocation"}},
    )
    assert ok.status_code == 202
    missing = arm.post(
        arm.item_path(SQL_ITEM) + "/recoveryPoints/4242/restore",
        json={"properties": {"objectType": "AzureWorkloadSQLRestoreRequest"}},
    )
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "BMSUserErrorRecoveryPointNotFound"
