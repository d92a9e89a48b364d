"""VerifyBackupOperator against the emulator: the passing report and every failing check."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from airflow_backup_provider.emulator import SQL_ITEM, VAULT_NAME, VM_ITEM, Emulator, SeededItem
from airflow_backup_provider.exceptions import (
    AzureBackupConfigError,
    AzureBackupNotFoundError,
    AzureBackupVerificationError,
)
from airflow_backup_provider.hooks.backup import AzureBackupHook
from airflow_backup_provider.operators.verify import VerifyBackupOperator
from airflow_backup_provider.protocol import RetryPolicy
from tests.conftest import RecordingTI

HOOK_PARAMS = {"retry_policy": RetryPolicy(backoff_base=0.05, backoff_max=0.2), "operation_poll_interval": 0.05}


def backup(item: SeededItem, outcome: str = "Completed", wait: bool = True) -> str:
    """Run one backup of ``item`` on the emulator (with the given outcome); return its job id."""
    hook = AzureBackupHook(**HOOK_PARAMS)  # type: ignore[arg-type]
    job_id = hook.trigger_backup(item.container_name, item.protected_item_name).job_id
    if wait:
        assert hook.wait_for_job(job_id, poll_interval=0.1).status == outcome
    return job_id


def make_op(job_id: str, item: SeededItem = VM_ITEM, **kwargs: Any) -> VerifyBackupOperator:
    return VerifyBackupOperator(
        task_id="verify",
        job_id=job_id,
        container_name=item.container_name,
        protected_item_name=item.protected_item_name,
        hook_params=HOOK_PARAMS,
        **kwargs,
    )


def failing(op: VerifyBackupOperator) -> tuple[AzureBackupVerificationError, dict[str, Any], RecordingTI]:
    ti = RecordingTI()
    with pytest.raises(AzureBackupVerificationError) as info:
        op.execute({"ti": ti})
    report = ti.xcom["verification"]
    assert isinstance(report, dict) and report["ok"] is False
    assert info.value.report == report
    return info.value, report, ti


def checks(report: dict[str, Any]) -> dict[str, bool]:
    return {c["name"]: c["ok"] for c in report["checks"]}


@pytest.fixture(autouse=True)
def _quick_jobs(emulator: Emulator) -> None:
    emulator.configure(operation_polls_in_progress=0)
    for item in (VM_ITEM, SQL_ITEM):
        emulator.set_item_behavior(item.protected_item_name, outcome="Completed", duration_seconds=300)


def test_a_good_backup_passes_every_check(emulator: Emulator) -> None:
    job_id = backup(VM_ITEM)
    ti = RecordingTI()
    report = make_op(job_id, max_recovery_point_age=timedelta(hours=1)).execute({"ti": ti})
    assert report == ti.xcom["verification"]
    assert report["ok"] is True and report["job_id"] == job_id and report["status"] == "Completed"
    assert report["item"] == "vm-app-01"
    assert checks(report) == {
        "job_succeeded": True,
        "recovery_point_exists": True,
        "item_healthy": True,
        "recovery_point_recent": True,
    }
    started = emulator.job(job_id).start_time
    assert report["recovery_point_id"] and datetime.fromisoformat(report["recovery_point_time"]) >= started
    assert ti.xcom["job_id"] == job_id and str(ti.xcom["job_url"]).endswith(f"/backupJobs/{job_id}/overview")
    # One GET each: job, item, recovery points (plus the token).
    arm = [r for r in emulator.requests if "/subscriptions/" in r.path.lower()]
    assert [r.path.rsplit("/", 1)[-1] for r in arm][-3:] == [job_id, VM_ITEM.protected_item_name, "recoveryPoints"]


def test_failed_job_lists_every_failed_check(emulator: Emulator) -> None:
    emulator.set_item_behavior(VM_ITEM.protected_item_name, outcome="Failed", duration_seconds=300)
    job_id = backup(VM_ITEM, outcome="Failed")
    error, report, _ = failing(make_op(job_id))
    assert checks(report) == {"job_succeeded": False, "recovery_point_exists": False, "item_healthy": False}
    message = str(error)
    assert f"job_succeeded: job {job_id} ended Failed: error " in message
    assert "recovery_point_exists: no recovery point of vm-app-01 at or after the job start" in message
    assert "item_healthy: vm-app-01: healthStatus is ActionRequired; lastBackupStatus is Failed (vm item)" in message
    assert report["status"] == "Failed" and report["recovery_point_id"] is None


@pytest.mark.parametrize("allow_warnings", [True, False])
def test_completed_with_warnings(emulator: Emulator, allow_warnings: bool) -> None:
    emulator.set_item_behavior(VM_ITEM.protected_item_name, outcome="CompletedWithWarnings", duration_seconds=300)
    job_id = backup(VM_ITEM, outcome="CompletedWithWarnings")
    op = make_op(job_id, allow_warnings=allow_warnings)
    if allow_warnings:
        report = op.execute({"ti": RecordingTI()})
        assert report["ok"] and report["status"] == "CompletedWithWarnings"
        return
    error, report, _ = failing(op)
    assert checks(report) == {"job_succeeded": False, "recovery_point_exists": True, "item_healthy": True}
    assert "ended CompletedWithWarnings and warnings are not allowed" in str(error)


def test_job_still_running_has_no_recovery_point_yet(emulator: Emulator) -> None:
    emulator.set_item_behavior(VM_ITEM.protected_item_name, outcome="Completed", duration_seconds=60_000)
    job_id = backup(VM_ITEM, wait=False)
    error, report, _ = failing(make_op(job_id, require_healthy_item=False))
    assert checks(report) == {"job_succeeded": False, "recovery_point_exists": False}
    assert f"job {job_id} has not finished: it is InProgress" in str(error)


def test_completed_job_whose_recovery_point_is_gone(emulator: Emulator) -> None:
    job_id = backup(VM_ITEM)
    # The point expired or was deleted since (no public emulator call for it yet: edit the in-process state).
    with emulator.app.vault.lock:
        emulator.app.vault.item_by_name(VM_ITEM.protected_item_name).recovery_points.pop()
    error, report, _ = failing(make_op(job_id))
    assert checks(report) == {"job_succeeded": True, "recovery_point_exists": False, "item_healthy": True}
    assert "recovery_point_exists: no recovery point of vm-app-01 at or after the job start" in str(error)


def test_workload_item_unhealthy_after_a_later_failed_backup(emulator: Emulator) -> None:
    good = backup(SQL_ITEM)
    emulator.set_item_behavior(SQL_ITEM.protected_item_name, outcome="Failed", duration_seconds=300)
    backup(SQL_ITEM, outcome="Failed")
    error, report, _ = failing(make_op(good, SQL_ITEM))
    assert checks(report) == {"job_succeeded": True, "recovery_point_exists": True, "item_healthy": False}
    # The LastBackupStatus enum of workload items, and the workload's own health field.
    assert "protectedItemHealthStatus is Unhealthy; lastBackupStatus is Unhealthy (workload item)" in str(error)
    # Without the item check the same job verifies.
    assert make_op(good, SQL_ITEM, require_healthy_item=False).execute({"ti": RecordingTI()})["ok"]


def test_never_backed_up_sentinel(emulator: Emulator) -> None:
    # A job id of another item against a protected but never backed-up one (the emulator's "never" state).
    job_id = backup(VM_ITEM)
    fresh = emulator.add_item(VAULT_NAME, "VM", "vm-fresh", health="never")
    error, report, _ = failing(make_op(job_id, fresh))
    assert checks(report) == {"job_succeeded": True, "recovery_point_exists": False, "item_healthy": False}
    assert "item_healthy: vm-fresh: protectionState is IRPending, not Protected" in str(error)
    assert "never backed up (lastBackupTime 2001-01-01T00:00:00" in str(error)


def test_stopped_protection(emulator: Emulator) -> None:
    job_id = backup(VM_ITEM)
    stopped = emulator.add_item(VAULT_NAME, "VM", "vm-stopped", health="stopped")
    error, report, _ = failing(make_op(job_id, stopped, require_healthy_item=True))
    assert checks(report)["item_healthy"] is False
    assert "protectionState is ProtectionStopped, not Protected" in str(error)


def test_stale_recovery_point(emulator: Emulator) -> None:
    # The seeded vault's completed VM backup, 8 h old: its point is older than an hour.
    seeded = [
        j
        for j in emulator.jobs
        if j.operation == "Backup" and j.status == "Completed" and j.protected_item_name == VM_ITEM.protected_item_name
    ]
    assert len(seeded) == 1
    op = make_op(seeded[0].job_id, max_recovery_point_age=3600)
    error, report, _ = failing(op)
    assert checks(report) == {
        "job_succeeded": True,
        "recovery_point_exists": True,
        "item_healthy": True,
        "recovery_point_recent": False,
    }
    assert "recovery_point_recent: newest recovery point " in str(error) and "(limit 1h00m)" in str(error)
    assert op.max_recovery_point_age == timedelta(hours=1)


def test_unknown_job_is_an_api_error_not_a_verdict(emulator: Emulator) -> None:
    ti = RecordingTI()
    with pytest.raises(AzureBackupNotFoundError):
        make_op("00000000-0000-0000-0000-00000000dead").execute({"ti": ti})
    assert "verification" not in ti.xcom


@pytest.mark.parametrize("job_id", ["", "None", None, "   "])
def test_empty_job_id_is_refused_before_any_request(emulator: Emulator, job_id: Any) -> None:
    emulator.clear_requests()
    with pytest.raises(AzureBackupConfigError, match=r"^job_id="):
        make_op(job_id).execute({"ti": RecordingTI()})
    assert emulator.requests == []


def test_bad_max_age_and_template_fields() -> None:
    with pytest.raises(AzureBackupConfigError, match=r"^max_recovery_point_age=-5"):
        make_op("x", max_recovery_point_age=-5)
    assert set(VerifyBackupOperator.template_fields) >= {"job_id", "container_name", "protected_item_name"}
