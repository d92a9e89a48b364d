"""Fleets: vaults and items seeded by configuration, added at run time (Python and admin API), and the health-check
states (stale, never backed up, last job failed, protection stopped) with matching jobs, all within the spec."""

from __future__ import annotations

import pathlib
import urllib.error
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_backup_provider.emulator import (
    RESOURCE_GROUP,
    SEEDED_ITEMS,
    VAULT_NAME,
    AdminClient,
    Emulator,
    EmulatorConfig,
)

from .conftest import Arm, backup_request_type
from .test_emulator_spec_shapes import _assert_has_shape, _assert_within_spec, _definitions, _example, _shape

ITEM_TYPES = {
    "VM": "Microsoft.Compute/virtualMachines",
    "AzureFileShare": "AzureFileShareProtectedItem",
    "SQLDataBase": "AzureVmWorkloadSQLDatabase",
}


def _enum(name: str) -> list[str]:
    values: list[str] = _definitions()[name]["enum"]
    return values


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _items(arm: Arm, vault_url: str) -> dict[str, dict[str, Any]]:
    response = arm.get(f"{vault_url}/backupProtectedItems")
    assert response.status_code == 200, response.text
    return {i["properties"]["friendlyName"]: i for i in response.json()["value"]}


def _jobs(arm: Arm, vault_url: str, **params: str) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    url: str | None = f"{vault_url}/backupJobs"
    query: dict[str, str] = dict(params)
    while url:
        response = arm.get(url, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        jobs.extend(body["value"])
        url, query = body.get("nextLink"), {}
    return jobs


@pytest.fixture
def fleet(tmp_path: pathlib.Path) -> Iterator[Emulator]:
    config = EmulatorConfig(time_scale=600, vaults=3, items_per_vault=4, health_states=True, job_page_size=5)
    with Emulator(config, ca_file=tmp_path / "ca.pem") as emulator:
        yield emulator


def test_configured_fleet_has_vaults_items_and_history(fleet: Emulator) -> None:
    arm = Arm(fleet)
    names = [v["name"] for v in fleet.vaults]
    assert names == [VAULT_NAME, f"{VAULT_NAME}-02", f"{VAULT_NAME}-03"]
    third = fleet.vault_url_of(f"{VAULT_NAME}-03")
    assert arm.get(third).json()["name"] == f"{VAULT_NAME}-03"
    items = _items(arm, third)
    assert sorted(items) == ["db-03-0003", "share-03-0002", "vm-03-0001", "vm-03-0004"]
    for item in items.values():
        props = item["properties"]
        assert props["protectedItemType"] == ITEM_TYPES[props["workloadType"]]
        assert props["protectionState"] == "Protected"
        assert props["vaultId"].endswith(f"/vaults/{VAULT_NAME}-03")
        _assert_within_spec(item, "ProtectedItemResource")
    assert items["vm-03-0001"]["properties"]["lastBackupStatus"] == "Completed"
    assert items["db-03-0003"]["properties"]["lastBackupStatus"] == "Healthy"
    # every generated item has its configure + backup job; pages of 5 follow nextLink
    jobs = _jobs(arm, third)
    assert len(jobs) == 8
    assert {j["properties"]["entityFriendlyName"] for j in jobs} == set(items)
    assert all(j["properties"]["status"] == "Completed" for j in jobs)
    # the seeded vault keeps its three items, plus its own four and the four health states
    assert len(_items(arm, fleet.vault_url)) == 3 + 4 + 4
    missing = arm.get(fleet.vault_url.replace(VAULT_NAME, f"{VAULT_NAME}-04"))
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "ResourceNotFound")
    # reset goes back to the configured seed, not to a single vault
    fleet.add_vault("rg-extra", "vault-extra")
    fleet.reset()
    assert [v["name"] for v in fleet.vaults] == names


def test_add_vault_and_items_at_run_time(arm: Arm, azure_backup_emulator: Emulator) -> None:
    emu = azure_backup_emulator
    vault_id = emu.add_vault("rg-other", "vault-other")
    assert vault_id.endswith("/resourceGroups/rg-other/providers/Microsoft.RecoveryServices/vaults/vault-other")
    url = emu.vault_url_of("rg-other/vault-other")
    assert _items(arm, url) == {}
    vm = emu.add_item("vault-other", "vm", "vm-new")
    share = emu.add_item("rg-other/vault-other", "file_share", "share-new", storage_account="stnew01")
    db = emu.add_item("vault-other", "AzureWorkload", "db-new", server="vm-sql-new")
    assert vm.protected_item_name == "VM;iaasvmcontainerv2;rg-fleet;vm-new"
    assert share.container_name == "StorageContainer;Storage;rg-fleet;stnew01"
    assert db.container_name == "VMAppContainer;Compute;rg-fleet;vm-sql-new"
    items = _items(arm, url)
    assert set(items) == {"vm-new", "share-new", "db-new"}
    item = arm.get(emu.item_url(vm, vault="vault-other"))
    assert item.status_code == 200 and item.json()["name"] == vm.protected_item_name
    assert arm.get(emu.item_url(vm)).status_code == 404  # not in the seeded vault

    # a backup in the new vault runs there, not in vault-demo
    accepted = arm.post(emu.item_url(share, vault="vault-other") + "/backup",
                        json={"properties": {"objectType": backup_request_type(share)}})  # fmt: skip
    assert accepted.status_code == 202, accepted.text
    assert "/vaults/vault-other/" in accepted.headers["Azure-AsyncOperation"]
    job_id = arm.follow_operation(accepted)["properties"]["jobId"]
    assert arm.get(f"{url}/backupJobs/{job_id}").status_code == 200
    assert arm.get(f"/backupJobs/{job_id}").status_code == 404
    view = emu.job(job_id)
    assert (view.vault_name, view.resource_group, view.status) == ("vault-other", "rg-other", "InProgress")

    with pytest.raises(ValueError, match="already"):
        emu.add_vault("rg-other", "VAULT-OTHER")
    with pytest.raises(ValueError, match="already has protected item"):
        emu.add_item("vault-other", "VM", "vm-new")
    with pytest.raises(ValueError, match="kind 'tape'"):
        emu.add_item("vault-other", "tape", "x")
    with pytest.raises(ValueError, match="health 'meh'"):
        emu.add_item("vault-other", "VM", "vm-meh", health="meh")
    with pytest.raises(KeyError):
        emu.add_item("vault-nowhere", "VM", "x")
    emu.reset()
    assert Arm(emu).get(url).json()["error"]["code"] == "ResourceGroupNotFound"  # reset also drops tokens


def test_health_states_are_shaped_like_the_service(arm: Arm, azure_backup_emulator: Emulator) -> None:
    emu = azure_backup_emulator
    seeds = emu.seed_health_states()
    assert set(seeds) == {"stale", "never", "failed", "stopped"}
    now = datetime.now(timezone.utc)
    items = _items(arm, emu.vault_url)
    for item in items.values():
        _assert_within_spec(item, "ProtectedItemResource")
        assert item["properties"]["protectionState"] in _enum("ProtectionState")
        if item["properties"]["workloadType"] == "SQLDataBase":
            assert item["properties"]["lastBackupStatus"] in _enum("LastBackupStatus")
            assert item["properties"]["protectedItemHealthStatus"] in _enum("ProtectedItemHealthStatus")
        if item["properties"]["workloadType"] == "VM":
            assert item["properties"]["healthStatus"] in _enum("HealthStatus")
    vm_example = _example("BackupProtectedItems_List.json")["responses"]["200"]["body"]["value"][0]
    _assert_has_shape(items["vm-stale"], _shape(vm_example))

    stale = items["vm-stale"]["properties"]
    assert stale["lastBackupStatus"] == "Completed"
    assert timedelta(days=3, minutes=-1) < now - _parse(stale["lastBackupTime"]) < timedelta(days=3, minutes=1)

    never = items["vm-never"]["properties"]
    assert (never["protectionState"], never["lastBackupStatus"]) == ("IRPending", "")
    assert never["lastBackupTime"] == "2001-01-01T00:00:00Z"
    assert never["lastRecoveryPoint"] is None
    never_points = arm.get(emu.item_url(seeds["never"]) + "/recoveryPoints").json()["value"]
    assert never_points == []

    failed = items["share-failed"]["properties"]
    assert (failed["lastBackupStatus"], failed["protectionStatus"]) == ("Unhealthy", "Unhealthy")
    assert _parse(failed["lastRecoveryPoint"]) < _parse(failed["lastBackupTime"])

    stopped = items["db-stopped"]["properties"]
    assert stopped["protectionState"] == "ProtectionStopped"
    assert stopped["lastBackupStatus"] == "Healthy"

    # matching jobs in the job list, newest first per item
    jobs = _jobs(arm, emu.vault_url)
    by_item: dict[str, list[dict[str, Any]]] = {}
    for job in jobs:
        by_item.setdefault(job["properties"]["entityFriendlyName"], []).append(job["properties"])
    assert [(j["operation"], j["status"]) for j in by_item["vm-never"]] == [("ConfigureBackup", "Completed")]
    assert [(j["operation"], j["status"]) for j in by_item["share-failed"]][:2] == [
        ("Backup", "Failed"),
        ("Backup", "Completed"),
    ]
    assert by_item["share-failed"][0]["errorDetails"]
    assert [j["operation"] for j in by_item["db-stopped"]][:2] == ["DisableBackup", "Backup"]
    assert _parse(by_item["vm-stale"][0]["endTime"]) == _parse(stale["lastBackupTime"])
    for job in jobs:
        _assert_within_spec(job, "JobResource")
    # a nightly check's 24 h job window sees exactly the failed backup and the never-backed-up item's configure
    since = (now - timedelta(hours=24)).strftime("%Y-%m-%d %I:%M:%S %p")
    recent = _jobs(arm, emu.vault_url, **{"$filter": f"startTime eq '{since}'"})
    seeded = {seed.friendly_name for seed in seeds.values()}
    assert {j["properties"]["entityFriendlyName"] for j in recent} & seeded == {"share-failed", "vm-never"}


def test_restore_of_a_fleet_item_is_a_restore_job(arm: Arm, azure_backup_emulator: Emulator) -> None:
    emu = azure_backup_emulator
    emu.add_vault(RESOURCE_GROUP, "vault-restore")
    share = emu.add_item("vault-restore", "AzureFileShare", "share-r")
    item_url = emu.item_url(share, vault="vault-restore")
    point = arm.get(item_url + "/recoveryPoints").json()["value"][0]
    assert point["properties"]["objectType"] == "AzureFileShareRecoveryPoint"
    body = {"properties": {"objectType": "AzureFileShareRestoreRequest", "recoveryType": "AlternateLocation"}}
    accepted = arm.post(f"{item_url}/recoveryPoints/{point['name']}/restore", json=body)
    assert accepted.status_code == 202, accepted.text
    example = _example("TriggerRestore_ALR_IaasVMRestoreRequest.json")["responses"]["202"]["headers"]
    assert set(example) <= set(accepted.headers)
    job_id = arm.follow_operation(accepted)["properties"]["jobId"]
    job = arm.get(emu.vault_url_of("vault-restore") + f"/backupJobs/{job_id}").json()
    assert job["properties"]["operation"] == "Restore"
    assert job["properties"]["extendedInfo"]["propertyBag"]["Restore Type"] == "AlternateLocation"
    _assert_within_spec(job, "JobResource")
    never = emu.add_item("vault-restore", "VM", "vm-never", health="never")
    missing = arm.post(emu.item_url(never, vault="vault-restore") + "/recoveryPoints/1/restore",
                       json={"properties": {"objectType": "IaasVMRestoreRequest"}})  # fmt: skip
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "BMSUserErrorRecoveryPointNotFound")


def test_fleet_over_the_admin_api(arm: Arm, azure_backup_emulator: Emulator) -> None:
    emu = azure_backup_emulator
    admin = AdminClient(emu.base_url, emu.ca_file)
    assert admin.add_vault("rg-admin", "vault-admin").endswith("/vaults/vault-admin")
    seed = admin.add_item("vault-admin", "SQLDataBase", "db-admin", health="failed")
    assert seed.protected_item_name == "SQLDataBase;mssqlserver;db-admin"
    props = arm.get(emu.item_url(seed, vault="vault-admin")).json()["properties"]
    assert (props["lastBackupStatus"], props["protectedItemHealthStatus"]) == ("Unhealthy", "Unhealthy")
    assert props["lastBackupErrorDetail"]["code"]
    states = admin.seed_health_states("vault-admin")
    assert states["stopped"].friendly_name == "db-stopped"
    summary = {v["name"]: v for v in admin.vaults()}
    assert summary["vault-admin"]["items"] == 5
    assert summary["vault-admin"]["resource_group"] == "rg-admin"
    admin.set_item_behavior(seed.protected_item_name, "Failed", 60, vault="vault-admin")
    for route, payload, status in (
        ("vaults", {"resource_group": "rg-admin", "name": "vault-admin"}, 400),
        ("vaults", {"name": "x"}, 400),
        ("items", {"vault": "nowhere", "kind": "VM", "name": "x"}, 404),
        ("items", {"vault": "vault-admin", "kind": "tape", "name": "x"}, 400),
        ("items", {"vault": "vault-admin", "kind": "VM", "name": "x", "colour": "red"}, 400),
        ("seed/health-states", {"vault": "nowhere"}, 404),
    ):
        with pytest.raises(urllib.error.HTTPError) as caught:
            admin._call("POST", route, payload)
        assert caught.value.code == status, (route, payload)


def test_protected_items_are_paged(arm: Arm, azure_backup_emulator: Emulator) -> None:
    emu = azure_backup_emulator
    emu.seed_health_states()
    emu.configure(item_page_size=3)
    first = arm.get("/backupProtectedItems").json()
    assert len(first["value"]) == 3 and "skiptoken" in first["nextLink"]
    every = [i["properties"]["friendlyName"] for i in _all_items(arm, first)]
    assert sorted(every) == sorted([*(i.friendly_name for i in SEEDED_ITEMS), "vm-stale", "vm-never", "share-failed",
                                    "db-stopped"])  # fmt: skip
    emu.configure(item_page_size=2)
    vms = arm.get("/backupProtectedItems", params={"$filter": "backupManagementType eq 'AzureIaasVM'"}).json()
    assert "backupManagementType" in vms["nextLink"]  # the filter travels in the nextLink
    names = [i["properties"]["friendlyName"] for i in _all_items(arm, vms)]
    assert names == ["vm-app-01", "vm-stale", "vm-never"]
    bad = arm.get("/backupProtectedItems", params={"$skiptoken": "garbage"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "BMSUserErrorInvalidInput")


def _all_items(arm: Arm, body: dict[str, Any]) -> list[dict[str, Any]]:
    items = list(body["value"])
    while body.get("nextLink"):
        body = arm.get(body["nextLink"]).json()
        items.extend(body["value"])
    return items
