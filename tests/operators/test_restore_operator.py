"""TriggerRestoreOperator against the emulator: latest / given recovery point, waiting, never restoring twice."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_backup_provider.emulator import SUBSCRIPTION_ID, VAULT_NAME, VM_ITEM, Emulator, Fault, SeededItem
from airflow_backup_provider.exceptions import (
    AzureBackupConfigError,
    AzureBackupError,
    AzureBackupJobFailedError,
    AzureBackupTransportError,
)
from airflow_backup_provider.hooks.backup import AzureBackupHook
from airflow_backup_provider.operators.restore import TriggerRestoreOperator
from airflow_backup_provider.protocol import RetryPolicy
from airflow_backup_provider.triggers.backup import BackupJobTrigger
from tests.conftest import DictTaskStateStore, RecordingTI

AIRFLOW_3_3 = importlib.metadata.version("apache-airflow") >= "3.3"
HOOK_PARAMS = {"retry_policy": RetryPolicy(backoff_base=0.05, backoff_max=0.2), "operation_poll_interval": 0.05}
STAGING_ACCOUNT = (
    f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/rg-staging/providers/Microsoft.Storage/storageAccounts/ststaging"
)
RESTORE_DISKS = {
    "objectType": "IaasVMRestoreRequest",
    "recoveryType": "RestoreDisks",
    "sourceResourceId": VM_ITEM.source_resource_id,
    "storageAccountId": STAGING_ACCOUNT,
    "region": "westeurope",
    "createNewCloudService": False,
    "originalStorageAccountOption": False,
    "encryptionDetails": {"encryptionEnabled": False},
}


def make_op(item: SeededItem = VM_ITEM, **kwargs: Any) -> TriggerRestoreOperator:
    defaults: dict[str, Any] = {"restore_request": RESTORE_DISKS, "job_lookup_grace": 1.0, "poll_interval": 0.2}
    return TriggerRestoreOperator(
        task_id="restore",
        container_name=item.container_name,
        protected_item_name=item.protected_item_name,
        hook_params=HOOK_PARAMS,
        **{**defaults, **kwargs},
    )


def restore_posts(emulator: Emulator) -> list[Any]:
    return [r for r in emulator.requests if r.method == "POST" and r.path.endswith("/restore")]


def restore_jobs(emulator: Emulator) -> list[Any]:
    return [j for j in emulator.jobs if j.operation == "Restore"]


@pytest.fixture(autouse=True)
def _quick(emulator: Emulator) -> None:
    emulator.configure(operation_polls_in_progress=0)
    emulator.set_item_behavior(VM_ITEM.protected_item_name, outcome="Completed", duration_seconds=300)


def newest_point_id() -> str:
    points = AzureBackupHook().list_recovery_points(VM_ITEM.container_name, VM_ITEM.protected_item_name)
    return max(points, key=lambda p: p.recovery_point_time).recovery_point_id  # type: ignore[arg-type,return-value]


def test_latest_recovery_point_is_restored(emulator: Emulator) -> None:
    # A fresh backup first, so that there are two points and "latest" has to choose.
    hook = AzureBackupHook(**HOOK_PARAMS)  # type: ignore[arg-type]
    backup_id = hook.trigger_backup(VM_ITEM.container_name, VM_ITEM.protected_item_name).job_id
    hook.wait_for_job(backup_id, poll_interval=0.1)
    latest = newest_point_id()
    ti = RecordingTI()
    job_id = make_op(wait_for_completion=True).execute({"ti": ti})
    assert job_id == ti.xcom["job_id"] and ti.xcom["recovery_point_id"] == latest
    [post] = restore_posts(emulator)
    assert f"/recoveryPoints/{latest}/restore" in post.path
    assert post.body == {"properties": {**RESTORE_DISKS, "recoveryPointId": latest}}
    [job] = restore_jobs(emulator)
    assert job.job_id == job_id and job.status == "Completed"
    # A restore job never counts as a backup of the item.
    assert not [r.path for r in emulator.requests if r.path.endswith("/backupProtectedItems")]


def test_given_recovery_point_and_wrapped_request(emulator: Emulator) -> None:
    point = newest_point_id()
    emulator.clear_requests()
    ti = RecordingTI()
    op = make_op(recovery_point_id=point, restore_request={"properties": RESTORE_DISKS})
    job_id = op.execute({"ti": ti})
    assert ti.xcom["recovery_point_id"] == point
    assert not [r for r in emulator.requests if r.path.endswith("/recoveryPoints")]  # no listing needed
    assert emulator.job(job_id).operation == "Restore"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"restore_request": {"recoveryType": "RestoreDisks"}}, "restore_request"),
        ({"restore_request": "not a request"}, "restore_request"),
        ({"restore_request": {**RESTORE_DISKS, "recoveryPointId": "1"}, "recovery_point_id": "2"}, "restore_request"),
        ({"recovery_point_id": ""}, "recovery_point_id"),
        ({"recovery_point_id": "a/b"}, "recovery_point_id"),
    ],
)
def test_bad_input_names_field_before_any_post(emulator: Emulator, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(AzureBackupConfigError, match=rf"^{field}="):
        make_op(**kwargs).execute({"ti": RecordingTI()})
    assert restore_posts(emulator) == []


def test_no_recovery_point_is_a_clear_error(emulator: Emulator) -> None:
    fresh = emulator.add_item(VAULT_NAME, "VM", "vm-fresh", health="never")  # protected, never backed up
    with pytest.raises(AzureBackupError, match="has no recovery point to restore from"):
        make_op(fresh).execute({"ti": RecordingTI()})
    assert restore_posts(emulator) == []


def test_failed_restore_fails_the_wait(emulator: Emulator) -> None:
    emulator.set_item_behavior(VM_ITEM.protected_item_name, outcome="Failed", duration_seconds=300)
    with pytest.raises(AzureBackupJobFailedError, match=r"\(Restore\) ended Failed"):
        make_op(wait_for_completion=True).execute({"ti": RecordingTI()})


def test_deferrable_wait_defers_to_the_job_trigger(emulator: Emulator) -> None:
    emulator.set_item_behavior(VM_ITEM.protected_item_name, outcome="Completed", duration_seconds=60_000)
    ti = RecordingTI()
    op = make_op(wait_for_completion=True, deferrable=True)
    with pytest.raises(TaskDeferred) as info:
        op.execute({"ti": ti})
    trigger = info.value.trigger
    assert isinstance(trigger, BackupJobTrigger) and trigger.job_id == ti.xcom["job_id"]
    assert trigger.cancel_on_kill  # its own job
    event = {"status": "success", "job_id": ti.xcom["job_id"], "message": "done", "summary": {}}
    assert op.execute_complete({"ti": ti}, event) == ti.xcom["job_id"]


def test_answer_lost_after_azure_acted_finds_the_job(emulator: Emulator) -> None:
    emulator.add_fault(Fault(kind="reset_after", method="POST", path_regex="/restore$"))
    ti = RecordingTI()
    job_id = make_op().execute({"ti": ti})
    assert len(restore_posts(emulator)) == 1 and [j.job_id for j in restore_jobs(emulator)] == [job_id]


def test_retry_after_a_lost_answer_attaches_instead_of_restoring_twice(emulator: Emulator) -> None:
    # Try 1: Azure starts the restore, the answer is lost, and the job search fails until the grace ends.
    store = DictTaskStateStore()
    emulator.add_fault(Fault(kind="reset_after", method="POST", path_regex="/restore$"))
    emulator.add_fault(Fault(kind="throttle", method="GET", path_regex="/backupJobs$", count=1000, retry_after=0))
    with pytest.raises(AzureBackupTransportError, match="may have acted"):
        make_op(job_lookup_grace=0.5).execute({"ti": RecordingTI(), "task_state_store": store})
    record = store.data["azure_backup_restore_job_id"]
    assert isinstance(record, dict) and record["job_id"] is None and record["operation"] == "Restore"
    # Try 2: it looks for that POST's job first and attaches to it as its own.
    emulator.clear_faults()
    ti = RecordingTI(try_number=2)
    op = make_op()
    job_id = op.execute({"ti": ti, "task_state_store": store})
    assert len(restore_posts(emulator)) == 1
    assert [j.job_id for j in restore_jobs(emulator)] == [job_id] == [ti.xcom["job_id"]]
    assert op.owns_job


@pytest.mark.skipif(not AIRFLOW_3_3, reason="task_state_store / ResumableJobMixin need Airflow 3.3")
def test_retry_reconnects_to_the_stored_restore_job(emulator: Emulator) -> None:
    store = DictTaskStateStore()
    first = make_op().execute({"ti": RecordingTI(), "task_state_store": store})
    assert store.data["azure_backup_restore_job_id"] == {"job_id": first, "owned": True}
    assert make_op().execute({"ti": RecordingTI(try_number=2), "task_state_store": store}) == first
    assert len(restore_posts(emulator)) == 1


def test_retry_after_a_failed_restore_restores_again(emulator: Emulator) -> None:
    store = DictTaskStateStore()
    emulator.set_item_behavior(VM_ITEM.protected_item_name, outcome="Failed", duration_seconds=300)
    with pytest.raises(AzureBackupJobFailedError):
        make_op(wait_for_completion=True).execute({"ti": RecordingTI(), "task_state_store": store})
    emulator.set_item_behavior(VM_ITEM.protected_item_name, outcome="Completed", duration_seconds=300)
    second = make_op(wait_for_completion=True).execute({"ti": RecordingTI(try_number=2), "task_state_store": store})
    assert len(restore_posts(emulator)) == 2 and emulator.job(second).status == "Completed"


def test_template_fields() -> None:
    assert set(TriggerRestoreOperator.template_fields) >= {
        "container_name",
        "protected_item_name",
        "restore_request",
        "recovery_point_id",
    }
    assert TriggerRestoreOperator.external_id_key != "azure_backup_job_id"
