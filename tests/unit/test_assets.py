"""Asset URIs, their normalizer and provider registration, and the events emitted for backup jobs (emulator)."""

from __future__ import annotations

import importlib.metadata
from typing import Any
from urllib.parse import urlsplit

import pytest

from airflow_backup_provider.assets import (
    BACKUP_ASSET_ALIAS,
    add_backup_outlet,
    backup_asset,
    backup_asset_uri,
    emit_backup_asset_event,
    normalize_backup_asset_uri,
)
from airflow_backup_provider.emulator import (
    RESOURCE_GROUP,
    SUBSCRIPTION_ID,
    VAULT_NAME,
    VM_ITEM,
    Emulator,
)
from airflow_backup_provider.exceptions import AzureBackupConfigError
from airflow_backup_provider.get_provider_info import get_provider_info
from airflow_backup_provider.hooks.backup import AzureBackupHook

AIRFLOW_3 = importlib.metadata.version("apache-airflow") >= "3"
VM_URI = f"azure-backup://{SUBSCRIPTION_ID}/{RESOURCE_GROUP}/{VAULT_NAME}/VM%3Biaasvmcontainerv2%3Brg-app%3Bvm-app-01"


def outlet_events() -> Any:
    if AIRFLOW_3:
        from airflow.sdk.execution_time.context import OutletEventAccessors
    else:
        from airflow.utils.context import OutletEventAccessors  # type: ignore[no-redef,attr-defined]
    return OutletEventAccessors()


def alias_events(events: Any) -> list[dict[str, Any]]:
    """The alias events recorded in an outlet-events accessor (Airflow 3: asset_alias_events; 2.11: dataset_...)."""
    from airflow.providers.common.compat.sdk import AssetAlias

    accessor = events[AssetAlias(BACKUP_ASSET_ALIAS)]
    recorded = getattr(accessor, "asset_alias_events", None)
    if recorded is None:
        recorded = accessor.dataset_alias_events
    out = []
    for event in recorded:
        if isinstance(event, dict):  # 2.11: a TypedDict
            out.append({"uri": event["dest_dataset_uri"], "extra": event["extra"]})
        else:
            out.append({"uri": event.dest_asset_key.uri, "extra": event.extra})
    return out


class Task:
    """What the emitter needs of an operator: its outlets (by default as ``add_backup_outlet`` declares them)."""

    outlets: list[Any]

    def __init__(self, *, declared: bool = True) -> None:
        self.outlets = add_backup_outlet({})["outlets"] if declared else []


def test_uri_encodes_every_segment() -> None:
    assert backup_asset_uri(SUBSCRIPTION_ID, RESOURCE_GROUP, VAULT_NAME, VM_ITEM.protected_item_name) == VM_URI
    assert backup_asset_uri("s", "r g", "v/x", "a;b") == "azure-backup://s/r%20g/v%2Fx/a%3Bb"
    with pytest.raises(AzureBackupConfigError, match=r"^protected_item_name=''"):
        backup_asset_uri("s", "r", "v", "")


def test_normalizer_canonicalises_and_rejects_malformed_uris() -> None:
    canonical = normalize_backup_asset_uri(urlsplit("azure-backup://s/rg/v/VM%3ba;b?x=1#f"))
    assert canonical.geturl() == "azure-backup://s/rg/v/VM%3Ba%3Bb"
    for bad in (
        "azure-backup://s/rg/v",
        "azure-backup:///rg/v/i",
        "azure-backup://s/rg//i",
        "azure-backup://s/a/b/c/d",
    ):
        with pytest.raises(ValueError, match="must be azure-backup://"):
            normalize_backup_asset_uri(urlsplit(bad))


def test_registered_with_airflow() -> None:
    info = get_provider_info()
    handler = "airflow_backup_provider.assets.normalize_backup_asset_uri"
    assert info["asset-uris"] == info["dataset-uris"] == [{"schemes": ["azure-backup"], "handler": handler}]
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    if AIRFLOW_3:
        manager.initialize_providers_asset_uri_resources()
        assert manager.asset_uri_handlers["azure-backup"] is normalize_backup_asset_uri
    else:
        manager.initialize_providers_dataset_uri_resources()
        assert manager.dataset_uri_handlers["azure-backup"] is normalize_backup_asset_uri
    # Airflow runs the normalizer on every Asset / Dataset it builds.
    assert backup_asset(SUBSCRIPTION_ID, RESOURCE_GROUP, VAULT_NAME, VM_ITEM.protected_item_name).uri == VM_URI


@pytest.fixture
def alias_known(request: pytest.FixtureRequest) -> None:
    """Airflow 2.11 emits only for an alias its DAG processor stored: sync a DAG that declares it (3.x: nothing)."""
    if AIRFLOW_3:
        return
    request.getfixturevalue("airflow_db")
    from datetime import datetime, timezone

    from airflow.models.dag import DAG

    from airflow_backup_provider.sensors.backup import BackupJobSensor

    with DAG("alias_holder", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc)) as dag:
        BackupJobSensor(task_id="wait", job_id="j")
    dag.sync_to_db()


def finished_vm_backup(emulator: Emulator) -> str:
    emulator.configure(operation_polls_in_progress=0)
    emulator.set_item_behavior(VM_ITEM.protected_item_name, outcome="Completed", duration_seconds=300)
    hook = AzureBackupHook(operation_poll_interval=0.05)
    job_id = hook.trigger_backup(VM_ITEM.container_name, VM_ITEM.protected_item_name).job_id
    hook.wait_for_job(job_id, poll_interval=0.1)
    return job_id


@pytest.mark.usefixtures("alias_known")
def test_a_job_is_matched_to_its_item(emulator: Emulator) -> None:
    job_id = finished_vm_backup(emulator)
    hook = AzureBackupHook()
    task, events = Task(), outlet_events()
    uri = emit_backup_asset_event(task, {"outlet_events": events}, hook, hook.get_job(job_id))
    assert uri == VM_URI
    assert [o.name for o in task.outlets] == [BACKUP_ASSET_ALIAS]  # declared once, not added again
    [event] = alias_events(events)
    assert event["uri"] == VM_URI
    assert event["extra"]["job_id"] == job_id and event["extra"]["status"] == "Completed"
    assert event["extra"]["protected_item_name"] == VM_ITEM.protected_item_name
    assert event["extra"]["vault"] == f"{RESOURCE_GROUP}/{VAULT_NAME}"
    # From a summary (the deferrable path) the job is read first; a given item needs no lookup.
    emulator.clear_requests()
    again = emit_backup_asset_event(
        task, {"outlet_events": events}, hook, {"job_id": job_id}, protected_item_name=VM_ITEM.protected_item_name
    )
    assert again == VM_URI and len(task.outlets) == 1
    assert [r.path.rsplit("/", 1)[-1] for r in emulator.requests if r.method == "GET"] == [job_id]


def test_restore_jobs_and_failed_backups_emit_nothing(emulator: Emulator) -> None:
    emulator.configure(operation_polls_in_progress=0)
    hook = AzureBackupHook(operation_poll_interval=0.05)
    point = hook.list_recovery_points(VM_ITEM.container_name, VM_ITEM.protected_item_name)[0]
    restore = hook.trigger_restore(
        VM_ITEM.container_name,
        VM_ITEM.protected_item_name,
        point.recovery_point_id,
        {
            "objectType": "IaasVMRestoreRequest",
            "recoveryPointId": point.recovery_point_id,
            "recoveryType": "RestoreDisks",
            "sourceResourceId": VM_ITEM.source_resource_id,
            "storageAccountId": f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/rg-staging/providers/"
            "Microsoft.Storage/storageAccounts/ststaging",
            "region": "westeurope",
        },
    )
    job = hook.wait_for_job(restore.job_id, poll_interval=0.1)
    assert job.operation == "Restore" and job.status == "Completed"
    events = outlet_events()
    assert emit_backup_asset_event(Task(), {"outlet_events": events}, hook, job) is None
    emulator.set_item_behavior(VM_ITEM.protected_item_name, outcome="Failed", duration_seconds=300)
    failed = hook.wait_for_job(
        hook.trigger_backup(VM_ITEM.container_name, VM_ITEM.protected_item_name).job_id, poll_interval=0.1
    )
    assert emit_backup_asset_event(Task(), {"outlet_events": events}, hook, failed) is None
    assert alias_events(events) == []


def test_outlet_declaration_keeps_the_users_outlets() -> None:
    from airflow.providers.common.compat.sdk import Asset

    mine = Asset("s3://bucket/report")
    outlets = add_backup_outlet({"outlets": [mine]})["outlets"]
    assert outlets[0] == mine and [getattr(o, "name", None) for o in outlets][1] == BACKUP_ASSET_ALIAS
    assert len(add_backup_outlet({"outlets": outlets})["outlets"]) == 2  # idempotent
    from airflow_backup_provider.operators.restore import TriggerRestoreOperator
    from airflow_backup_provider.operators.verify import VerifyBackupOperator
    from airflow_backup_provider.sensors.backup import BackupJobSensor

    sensor = BackupJobSensor(task_id="s", job_id="j")
    verify = VerifyBackupOperator(task_id="v", job_id="j", container_name="c", protected_item_name="i")
    restore = TriggerRestoreOperator(
        task_id="r", container_name="c", protected_item_name="i", restore_request={"objectType": "IaasVMRestoreRequest"}
    )
    assert [o.name for o in sensor.outlets] == [o.name for o in verify.outlets] == [BACKUP_ASSET_ALIAS]
    assert restore.outlets == []


def test_undeclared_alias(emulator: Emulator) -> None:
    """Airflow 3 takes an alias outlet added at run time; 2.11 would fail the task, so nothing is emitted there."""
    job_id = finished_vm_backup(emulator)
    hook = AzureBackupHook()
    task, events = Task(declared=False), outlet_events()
    uri = emit_backup_asset_event(task, {"outlet_events": events}, hook, hook.get_job(job_id))
    if AIRFLOW_3:
        assert uri == VM_URI and [o.name for o in task.outlets] == [BACKUP_ASSET_ALIAS]
    else:
        assert uri is None and task.outlets == [] and alias_events(events) == []


def test_emission_never_raises(emulator: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    job_id = finished_vm_backup(emulator)
    hook = AzureBackupHook()
    assert emit_backup_asset_event(Task(), {}, hook, hook.get_job(job_id)) is None  # no outlet_events
    assert "Could not emit the backup asset event" in caplog.text
