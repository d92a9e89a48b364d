"""BackupJobsSensor against the emulator: one listing per poke for many jobs, all summaries, every failure named."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import PokeReturnValue

from airflow_backup_provider.emulator import VAULT_NAME, Emulator, Fault
from airflow_backup_provider.exceptions import AzureBackupConfigError, AzureBackupJobFailedError
from airflow_backup_provider.hooks.backup import AzureBackupHook
from airflow_backup_provider.protocol import RetryPolicy
from airflow_backup_provider.sensors.jobs import BackupJobsSensor
from airflow_backup_provider.version_compat import AirflowRescheduleException
from tests.conftest import RecordingTI

HOOK_PARAMS = {"retry_policy": RetryPolicy(backoff_base=0.05, backoff_max=0.2), "operation_poll_interval": 0.05}
_COUNTER = itertools.count()


def start_jobs(emulator: Emulator, n: int) -> list[str]:
    hook = AzureBackupHook(**HOOK_PARAMS)
    ids = []
    for _ in range(n):
        item = emulator.add_item(VAULT_NAME, "VM", f"vm-many-{next(_COUNTER)}")
        emulator.set_item_behavior(item.protected_item_name, outcome="Completed", duration_seconds=10**7)
        ids.append(hook.trigger_backup(item.container_name, item.protected_item_name).job_id)
    return ids


def sensor(job_ids: Any, **kwargs: Any) -> BackupJobsSensor:
    return BackupJobsSensor(task_id="wait_for_backups", job_ids=job_ids, hook_params=HOOK_PARAMS, **kwargs)


def arm_requests(emulator: Emulator) -> list[str]:
    out = []
    for r in emulator.requests:
        path = r.path.lower()
        if path.endswith("/backupjobs"):
            out.append("list")
        elif "/backupjobs/" in path:
            out.append("get")
        elif "/oauth2/" in path:
            out.append("token")
    return out


def test_one_listing_per_poke_until_all_are_done_then_every_summary(emulator: Emulator) -> None:
    ids = start_jobs(emulator, 5)
    emulator.clear_requests()
    assert sensor(ids).poke({"ti": RecordingTI()}) is False
    assert arm_requests(emulator) == ["token", "list"]  # five jobs, one sign-in, one listing
    for j in ids[:3]:
        emulator.finish_job(j)
    assert sensor(ids).poke({"ti": RecordingTI()}) is False
    for j in ids[3:]:
        emulator.finish_job(j, "CompletedWithWarnings")
    emulator.clear_requests()
    result = sensor(ids).poke({"ti": RecordingTI()})
    assert isinstance(result, PokeReturnValue) and result.is_done
    assert list(result.xcom_value) == ids
    assert [s["status"] for s in result.xcom_value.values()] == ["Completed"] * 3 + ["CompletedWithWarnings"] * 2
    assert arm_requests(emulator) == ["token", "list"]


def test_fails_naming_every_failed_job_once_all_are_terminal(emulator: Emulator) -> None:
    ids = start_jobs(emulator, 4)
    emulator.finish_job(ids[0], "Failed")
    assert sensor(ids).poke({"ti": RecordingTI()}) is False  # the others still run: keep waiting
    emulator.finish_job(ids[1], "Failed")
    emulator.finish_job(ids[2])
    emulator.finish_job(ids[3], "CompletedWithWarnings")
    with pytest.raises(AzureBackupJobFailedError) as info:
        sensor(ids).poke({"ti": RecordingTI()})
    message = str(info.value)
    assert message.startswith("2 of 4 backup jobs did not succeed")
    assert ids[0] in message and ids[1] in message and ids[2] not in message and ids[3] not in message
    with pytest.raises(AzureBackupJobFailedError, match="3 of 4"):
        sensor(ids, fail_on_warnings=True).poke({"ti": RecordingTI()})


def test_throttled_listing_reschedules_after_retry_after(emulator: Emulator) -> None:
    ids = start_jobs(emulator, 2)
    emulator.add_fault(Fault(kind="throttle", method="GET", path_regex=r"/backupJobs$", retry_after=600))
    with pytest.raises(AirflowRescheduleException):
        sensor(ids).poke({"ti": RecordingTI()})


@pytest.mark.parametrize("bad", [[], ["  "], "", [None]])
def test_bad_job_ids_name_the_field(bad: Any) -> None:
    with pytest.raises(AzureBackupConfigError, match="job_ids"):
        sensor(bad).poke({"ti": RecordingTI()})


def test_a_single_templated_id_is_accepted_and_duplicates_collapse(emulator: Emulator) -> None:
    (job,) = start_jobs(emulator, 1)
    emulator.finish_job(job)
    result = sensor([job, job]).poke({"ti": RecordingTI()})
    assert isinstance(result, PokeReturnValue) and list(result.xcom_value) == [job]
    assert isinstance(sensor(job).poke({"ti": RecordingTI()}), PokeReturnValue)
