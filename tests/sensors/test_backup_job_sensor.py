"""BackupJobSensor against the emulator: every status, reschedule by default, deferral, events, cancel on timeout."""

from __future__ import annotations

import asyncio
import importlib.metadata
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowSensorTimeout, PokeReturnValue, TaskDeferred

from airflow_backup_provider.emulator import VAULT_NAME as VM_ITEM_VAULT
from airflow_backup_provider.emulator import VM_ITEM, Emulator, Fault
from airflow_backup_provider.exceptions import (
    AzureBackupConfigError,
    AzureBackupJobFailedError,
    AzureBackupNotFoundError,
    AzureBackupTriggerEventError,
)
from airflow_backup_provider.hooks.backup import AzureBackupHook
from airflow_backup_provider.protocol import RetryPolicy
from airflow_backup_provider.sensors.backup import BackupJobSensor
from airflow_backup_provider.triggers.backup import BackupJobTrigger
from tests.conftest import RecordingTI

AIRFLOW_3 = importlib.metadata.version("apache-airflow") >= "3"
HOOK_PARAMS = {"retry_policy": RetryPolicy(backoff_base=0.05, backoff_max=0.2), "operation_poll_interval": 0.05}


def start_backup(emulator: Emulator, outcome: str = "Completed", duration: float = 60.0) -> str:
    emulator.set_item_behavior(VM_ITEM.protected_item_name, outcome=outcome, duration_seconds=duration)
    return AzureBackupHook(**HOOK_PARAMS).trigger_backup(VM_ITEM.container_name, VM_ITEM.protected_item_name).job_id


def sensor(job_id: str, **kwargs: Any) -> BackupJobSensor:
    return BackupJobSensor(task_id="wait_for_backup", job_id=job_id, hook_params=HOOK_PARAMS, **kwargs)


def finished(emulator: Emulator, job_id: str) -> None:
    deadline = time.time() + 30
    while time.time() < deadline:
        if any(j.job_id == job_id and j.end_time for j in emulator.jobs):
            return
        time.sleep(0.1)
    raise AssertionError("job did not finish")


def test_defaults_are_reschedule_and_60_seconds() -> None:
    s = BackupJobSensor(task_id="w", job_id="x")
    assert s.mode == "reschedule"
    assert s.poke_interval == 60
    assert set(BackupJobSensor.template_fields) >= {"job_id", "vault_name", "resource_group_name"}


def test_running_job_is_not_done(emulator: Emulator, task_logs: Any) -> None:
    job_id = start_backup(emulator, duration=10**6)
    assert sensor(job_id).poke({"ti": RecordingTI()}) is False
    assert "InProgress" in task_logs() and "Take Snapshot" in task_logs()  # status and task list logged


def test_completed_job_returns_summary(emulator: Emulator) -> None:
    job_id = start_backup(emulator)
    finished(emulator, job_id)
    ti = RecordingTI()
    result = sensor(job_id).poke({"ti": ti})
    assert isinstance(result, PokeReturnValue) and result.is_done
    summary = result.xcom_value
    assert summary["job_id"] == job_id and summary["status"] == "Completed"
    assert summary["entity_friendly_name"] == VM_ITEM.friendly_name and summary["operation"] == "Backup"
    assert summary["start_time"] and summary["end_time"] and summary["duration"].startswith("PT")
    assert summary["backup_size"]
    assert ti.xcom["job_url"]


def test_warnings_pass_with_a_warning(emulator: Emulator, task_logs: Any) -> None:
    job_id = start_backup(emulator, outcome="CompletedWithWarnings")
    finished(emulator, job_id)
    result = sensor(job_id).poke({"ti": RecordingTI()})
    assert isinstance(result, PokeReturnValue) and result.xcom_value["status"] == "CompletedWithWarnings"
    assert "completed with warnings" in task_logs()


def test_warnings_fail_when_asked(emulator: Emulator) -> None:
    job_id = start_backup(emulator, outcome="CompletedWithWarnings")
    finished(emulator, job_id)
    with pytest.raises(AzureBackupJobFailedError, match="CompletedWithWarnings"):
        sensor(job_id, fail_on_warnings=True).poke({"ti": RecordingTI()})


def test_failed_job_raises_with_codes_and_recommendations(emulator: Emulator) -> None:
    job_id = start_backup(emulator, outcome="Failed")
    finished(emulator, job_id)
    with pytest.raises(AzureBackupJobFailedError) as info:
        sensor(job_id).poke({"ti": RecordingTI()})
    message = str(info.value)
    assert job_id in message and VM_ITEM.friendly_name in message
    assert "error codes: " in message and "Recommendations:" in message
    assert info.value.status == "Failed" and info.value.error_codes and info.value.error_codes[0] is not None


def test_cancelled_job_raises(emulator: Emulator) -> None:
    job_id = start_backup(emulator, duration=10**6)
    AzureBackupHook(**HOOK_PARAMS).cancel_job(job_id)
    finished(emulator, job_id)
    with pytest.raises(AzureBackupJobFailedError, match="ended Cancelled"):
        sensor(job_id).poke({"ti": RecordingTI()})


def test_job_not_visible_yet_keeps_poking(emulator: Emulator) -> None:
    emulator.add_fault(Fault(kind="job_not_found", count=1))
    job_id = start_backup(emulator)
    assert sensor(job_id).poke({"ti": RecordingTI()}) is False


@pytest.mark.parametrize("job_id", ["", "None", "  "])
def test_empty_job_id_is_a_clear_error(job_id: str) -> None:
    with pytest.raises(AzureBackupConfigError, match="job_id"):
        sensor(job_id).poke({"ti": RecordingTI()})


@pytest.mark.skipif(not AIRFLOW_3, reason="without a DB, reschedule execute() works on Airflow 3 only")
def test_reschedule_mode_releases_the_slot(emulator: Emulator) -> None:
    from airflow.sdk.exceptions import AirflowRescheduleException

    job_id = start_backup(emulator, duration=10**6)

    class TI(RecordingTI):
        def get_first_reschedule_date(self, context: Any) -> None:
            return None

    with pytest.raises(AirflowRescheduleException) as info:
        sensor(job_id, poke_interval=7).execute({"ti": TI(), "task_reschedule_count": 0})
    assert info.value.reschedule_date is not None


def test_poke_mode_timeout_cancels_when_asked(emulator: Emulator) -> None:
    job_id = start_backup(emulator, duration=10**6)
    s = sensor(job_id, mode="poke", poke_interval=0.2, timeout=0.5, cancel_on_timeout=True)

    class TI(RecordingTI):
        def get_first_reschedule_date(self, context: Any) -> None:
            return None

    with pytest.raises(AirflowSensorTimeout):
        s.execute({"ti": TI(), "task_reschedule_count": 0})
    assert any(r.path.endswith(f"/backupJobs/{job_id}/cancel") for r in emulator.requests)


def test_soft_fail_timeout_still_cancels_when_asked(emulator: Emulator) -> None:
    from airflow.providers.common.compat.sdk import AirflowSkipException

    job_id = start_backup(emulator, duration=10**6)
    s = sensor(job_id, mode="poke", poke_interval=0.2, timeout=0.5, cancel_on_timeout=True, soft_fail=True)

    class TI(RecordingTI):
        def get_first_reschedule_date(self, context: Any) -> None:
            return None

    with pytest.raises(AirflowSkipException, match="timed out"):
        s.execute({"ti": TI(), "task_reschedule_count": 0})
    assert any(r.path.endswith(f"/backupJobs/{job_id}/cancel") for r in emulator.requests)


def test_wrong_vault_fails_at_once_instead_of_waiting(emulator: Emulator) -> None:
    from airflow_backup_provider.exceptions import AzureBackupNotFoundError

    job_id = start_backup(emulator)
    with pytest.raises(AzureBackupNotFoundError, match="ResourceNotFound"):
        sensor(job_id, vault_name="no-such-vault").poke({"ti": RecordingTI()})


class TestDeferrable:
    def test_finished_job_returns_without_deferring(self, emulator: Emulator) -> None:
        job_id = start_backup(emulator)
        finished(emulator, job_id)
        assert sensor(job_id, deferrable=True).execute({"ti": RecordingTI()})["status"] == "Completed"

    def test_running_job_defers_to_the_trigger(self, emulator: Emulator) -> None:
        job_id = start_backup(emulator, duration=10**6)
        with pytest.raises(TaskDeferred) as info:
            sensor(job_id, deferrable=True, poke_interval=5, timeout=100, cancel_on_timeout=True).execute(
                {"ti": RecordingTI()}
            )
        trigger = info.value.trigger
        assert isinstance(trigger, BackupJobTrigger) and info.value.timeout is None
        assert trigger.job_id == job_id and trigger.poll_interval == 5 and trigger.cancel_on_timeout
        assert time.time() < trigger.end_time <= time.time() + 100

    def test_execute_complete_success(self, emulator: Emulator) -> None:
        event = {
            "status": "success",
            "job_id": "j1",
            "message": "ok",
            "summary": {"job_id": "j1", "status": "Completed"},
        }
        assert sensor("j1").execute_complete({"ti": RecordingTI()}, event)["status"] == "Completed"

    @pytest.mark.parametrize(
        ("event", "error"),
        [
            ({"status": "timeout", "job_id": "j1", "message": "late"}, AirflowSensorTimeout),
            ({"status": "failed", "job_id": "j1", "message": "job j1 ended Failed"}, AzureBackupJobFailedError),
            ({"status": "error", "job_id": "j1", "message": "x"}, AzureBackupTriggerEventError),
            ({"status": "success", "job_id": "other", "message": "x", "summary": {}}, AzureBackupTriggerEventError),
            ({"status": "success", "job_id": "j1", "message": "no summary"}, AzureBackupTriggerEventError),
            (None, AzureBackupTriggerEventError),
        ],
    )
    def test_execute_complete_failures(self, event: dict[str, Any] | None, error: type[Exception]) -> None:
        with pytest.raises(error):
            sensor("j1").execute_complete({"ti": RecordingTI()}, event)


def test_job_404_in_a_missing_vault_fails_at_once_naming_the_vault(emulator: Emulator) -> None:
    job_id = start_backup(emulator)
    with pytest.raises(AzureBackupNotFoundError, match="vault 'no-such-vault'"):
        sensor(job_id, vault_name="no-such-vault").poke({"ti": RecordingTI()})
    assert [r.path.rsplit("/", 1)[-1] for r in emulator.requests if r.method == "GET"][-2:] == [job_id, "no-such-vault"]


def test_ambiguous_job_404_checks_the_vault_then_keeps_poking(emulator: Emulator) -> None:
    emulator.add_fault(Fault(kind="job_not_found", count=1))
    job_id = start_backup(emulator)
    emulator.clear_requests()
    assert sensor(job_id).poke({"ti": RecordingTI()}) is False
    gets = [r.path for r in emulator.requests if r.method == "GET" and r.path.startswith("/subscriptions/")]
    assert gets[0].endswith(job_id) and gets[1].endswith(f"/vaults/{VM_ITEM_VAULT}")


def test_throttled_reschedule_poke_frees_the_slot_until_retry_after(emulator: Emulator) -> None:
    from airflow_backup_provider.version_compat import AirflowRescheduleException

    job_id = start_backup(emulator, duration=10**6)
    emulator.add_fault(Fault(kind="throttle", method="GET", path_regex="/backupJobs/", count=100, retry_after=3600))
    emulator.clear_requests()
    before = datetime.now(timezone.utc)
    with pytest.raises(AirflowRescheduleException) as info:
        sensor(job_id, poke_interval=30).poke({"ti": RecordingTI()})
    assert info.value.reschedule_date >= before + timedelta(seconds=3600)
    job_reads = [r for r in emulator.requests if r.path.endswith(job_id)]
    assert len(job_reads) == 1  # not retried in the worker slot


def test_throttled_poke_in_poke_mode_is_not_done(emulator: Emulator) -> None:
    job_id = start_backup(emulator, duration=10**6)
    emulator.add_fault(Fault(kind="throttle", method="GET", path_regex="/backupJobs/", count=1, retry_after=1))
    policy = RetryPolicy(max_attempts=1)
    s = BackupJobSensor(task_id="w", job_id=job_id, mode="poke", hook_params={"retry_policy": policy})
    assert s.poke({"ti": RecordingTI()}) is False


def test_trigger_waits_out_throttling_longer_than_its_retries(emulator: Emulator) -> None:
    job_id = start_backup(emulator, duration=30)
    emulator.add_fault(Fault(kind="throttle", method="GET", path_regex="/backupJobs/", count=3, retry_after=1))
    trigger = BackupJobTrigger(
        job_id=job_id,
        azure_backup_conn_id="azure_backup_default",
        end_time=time.time() + 60,
        poll_interval=0.2,
        hook_params={"retry_policy": RetryPolicy(max_attempts=1)},
    )

    async def first_event() -> Any:
        return await trigger.run().__anext__()

    event = asyncio.run(first_event())
    assert event.payload["status"] == "success", event.payload
