"""A truncated body (``Content-Length`` promises more than arrives before the connection closes), through both hooks.

The emulator's ``truncated`` fault acts on the request first (a POST starts its backup), like ``reset_after``: a GET
may be repeated, a POST never, and the operator finds the job its POST started.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_backup_provider.emulator import VM_ITEM, Emulator, Fault
from airflow_backup_provider.exceptions import AzureBackupTransportError
from airflow_backup_provider.operators.backup import TriggerBackupOperator
from tests.conftest import RecordingTI
from tests.hooks.test_hook_emulator import FAST, AsyncClient, Client, SyncClient, arm_requests


@pytest.fixture(params=["sync", "async"])
def client(request: pytest.FixtureRequest, emulator: Emulator) -> Client:
    return SyncClient() if request.param == "sync" else AsyncClient()


def backup_jobs_of(emulator: Emulator, item: Any) -> list[Any]:
    return [j for j in emulator.jobs if j.operation == "Backup" and j.protected_item_name == item.protected_item_name]


def test_truncated_get_is_retried_then_succeeds(client: Client, emulator: Emulator) -> None:
    job_id = client.trigger().job_id
    emulator.add_fault(Fault(kind="truncated", method="GET", path_regex="/backupJobs/", count=2))
    assert client.get_job(job_id).job_id == job_id
    assert len(arm_requests(emulator, "GET", "/backupJobs/")) == 3  # two truncated answers, then a whole one
    assert emulator.faults == []


def test_persistently_truncated_get_is_bounded(client: Client, emulator: Emulator) -> None:
    job_id = client.trigger().job_id
    emulator.add_fault(Fault(kind="truncated", method="GET", path_regex="/backupJobs/", count=20))
    with pytest.raises(AzureBackupTransportError):
        client.get_job(job_id)
    assert len(arm_requests(emulator, "GET", "/backupJobs/")) == FAST["retry_policy"].max_attempts


def test_truncated_post_is_never_re_posted(client: Client, emulator: Emulator) -> None:
    before = len(backup_jobs_of(emulator, VM_ITEM))
    emulator.add_fault(Fault(kind="truncated", method="POST", path_regex="/backup$"))
    with pytest.raises(AzureBackupTransportError, match="may have acted") as info:
        client.trigger()
    assert info.value.may_have_acted
    assert len(arm_requests(emulator, "POST", "/backup")) == 1
    assert len(backup_jobs_of(emulator, VM_ITEM)) == before + 1  # the service acted on it


def test_operator_finds_the_job_of_a_truncated_post(emulator: Emulator) -> None:
    before = {j.job_id for j in backup_jobs_of(emulator, VM_ITEM)}
    emulator.add_fault(Fault(kind="truncated", method="POST", path_regex="/backup$"))
    ti = RecordingTI()
    op = TriggerBackupOperator(
        task_id="trigger_backup",
        container_name=VM_ITEM.container_name,
        protected_item_name=VM_ITEM.protected_item_name,
        hook_params=FAST,
        poll_interval=0.2,
        job_lookup_grace=10.0,
    )
    job_id = op.execute({"ti": ti})
    new_jobs = [j.job_id for j in backup_jobs_of(emulator, VM_ITEM) if j.job_id not in before]
    assert new_jobs == [job_id] == [ti.xcom["job_id"]]  # one job, and it is the one returned
    assert len(arm_requests(emulator, "POST", "/backup")) == 1  # one POST
    assert op.owns_job
